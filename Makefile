# hookline - build, run, test, install. `make help` lists the targets.

PREFIX     ?= /usr/local
CC         ?= cc
BUILD      := build
VERSION    := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# Debian packages the build, the tests and the benchmarks need.
DEB_PKGS := build-essential pkg-config clang curl \
            libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev \
            libyaml-dev libpcre2-dev libssl-dev libhttp-parser-dev \
            libcmocka-dev python3 python3-pytest python3-jsonschema wrk nginx-light \
            webhook python3-aiosmtpd sqlite3 python3-websockets \
            python3-prometheus-client chromium prometheus-alertmanager openssl

PKGS    := libuv libcurl jansson sqlite3 yaml-0.1 libpcre2-8 libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -ldl -lm

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
CSTD     := -std=c17 -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -Iengine -Iengine/include \
             -DHL_VERSION='"$(VERSION)"' $(PKG_CFLAGS) -MMD -MP

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined

ENGINE_SRC := $(filter-out engine/main.c,$(wildcard engine/*.c))
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ   := $(BUILD)/obj/engine/main.o

TEST_ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/test/obj/%.o)
TEST_MAIN_OBJ   := $(BUILD)/test/obj/engine/main.o
UNIT_SRC        := $(wildcard tests/unit/test_*.c)
UNIT_BIN        := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/test/unit/%)

# Connector plugins: connectors/<name>/*.c -> <name>.so, built against the
# SDK header only. The test build gets its own, with the sanitizers.
# connectors/lib/ is code the built-in connectors share (written against
# the SDK header only), linked into each of them; it is not a connector.
CONNECTORS    := $(filter-out lib,$(notdir $(wildcard connectors/*)))
CONN_LIB      := $(wildcard connectors/lib/*.c)
CONN_SO       := $(CONNECTORS:%=$(BUILD)/connectors/%.so)
TEST_CONN_SO  := $(CONNECTORS:%=$(BUILD)/test/connectors/%.so)
# Plugins the tests load to check the loader's refusals.
TEST_PLUGIN_SRC := $(wildcard tests/plugins/*.c)
TEST_PLUGIN_SO  := $(TEST_PLUGIN_SRC:tests/plugins/%.c=$(BUILD)/test/plugins/%.so)
PLUGIN_CFLAGS := $(CSTD) $(WARN) -Iengine/include -Iconnectors/lib -fPIC -fvisibility=hidden -MMD -MP

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60

.PHONY: all deps run test test-build unit e2e fuzz bench install clean help

all: $(BUILD)/hookline $(CONN_SO)

help:
	@echo "make deps     install the Debian packages that are missing (as root)"
	@echo "make          build $(BUILD)/hookline"
	@echo "make run      deps, build, run examples/quickstart/hookline.yaml"
	@echo "make test     deps, sanitizer build, unit and end-to-end tests"
	@echo "make fuzz     libFuzzer targets, FUZZ_SECONDS=$(FUZZ_SECONDS) each"
	@echo "make bench    benchmarks (tests/bench)"
	@echo "make install  PREFIX=$(PREFIX)"
	@echo "make clean"

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "deps: installing" $$missing; \
	        apt-get update -q >/dev/null && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
	        || { echo "deps: apt-get failed; run it by hand to see why:"; \
	             echo "  apt-get install -y" $$missing; exit 1; }; \
	    else \
	        echo "deps: missing Debian packages:" $$missing; \
	        echo "deps: install them with:"; \
	        echo "  sudo apt-get update && sudo apt-get install -y" $$missing; \
	        exit 1; \
	    fi; \
	fi

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libhookline.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/hookline: $(MAIN_OBJ) $(BUILD)/libhookline.a
	$(CC) $(CFLAGS) -rdynamic -o $@ $^ $(PKG_LIBS)

.SECONDEXPANSION:
$(BUILD)/connectors/%.so: $$(wildcard connectors/%/*.c) $(CONN_LIB) engine/include/hookline/connector.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(CFLAGS) -shared -o $@ $(filter %.c,$^)

$(BUILD)/test/connectors/%.so: $$(wildcard connectors/%/*.c) $(CONN_LIB) engine/include/hookline/connector.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(SAN_FLAGS) -shared -o $@ $(filter %.c,$^)

$(BUILD)/test/plugins/%.so: tests/plugins/%.c engine/include/hookline/connector.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -O1 -g -shared -o $@ $<

# The sanitizer build, used by every test.
$(BUILD)/test/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(BUILD)/test/libhookline.a: $(TEST_ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/test/hookline: $(TEST_MAIN_OBJ) $(BUILD)/test/libhookline.a
	$(CC) $(SAN_FLAGS) -rdynamic -o $@ $^ $(PKG_LIBS)

$(BUILD)/test/unit/%: tests/unit/%.c $(BUILD)/test/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(BUILD)/test/libhookline.a \
	    $(PKG_LIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

# The release binary is built too: -O2 finds warnings -O1 does not. The
# fuzz targets are built so they cannot rot, and tests/run replays their
# corpora (every past crash is kept there).
test-build: $(BUILD)/hookline $(CONN_SO) $(BUILD)/test/hookline $(TEST_CONN_SO) \
            $(TEST_PLUGIN_SO) $(UNIT_BIN) $(FUZZ_BIN)

# The engine in the foreground, and the quickstart's receiver beside it
# printing each delivery; Ctrl-C stops both.
run: deps $(BUILD)/hookline $(CONN_SO)
	@mkdir -p var
	@/usr/bin/python3 examples/quickstart/receiver.py --lines 14 & rcv=$$!; \
	trap 'kill $$rcv 2>/dev/null' EXIT INT TERM; \
	$(BUILD)/hookline run -c examples/quickstart/hookline.yaml

test: deps
	@$(MAKE) --no-print-directory test-build
	@tests/run

# The fuzz build: clang with libFuzzer and the sanitizers.
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(ALL_CFLAGS) -g -O1 -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(ENGINE_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
	@mkdir -p $(dir $@)
	clang $(ALL_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c %.o,$^) $(PKG_LIBS)

fuzz: deps $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	    name=$$(basename $$f); corpus=tests/fuzz/corpus/$${name#fuzz_}; \
	    mkdir -p $(BUILD)/fuzz/work/$$name; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $(BUILD)/fuzz/work/$$name $$corpus </dev/null || exit 1; \
	done

bench: deps $(BUILD)/hookline $(CONN_SO)
	@tests/bench/run

# Installs the engine, its data files, the built-in connectors, and the SDK
# for out-of-tree connectors: hookline/connector.h and hookline-connector.pc
# (`pkg-config --cflags hookline-connector`; its connectorsdir variable is
# where an installed hookline looks for plugins).
install: $(BUILD)/hookline $(CONN_SO)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/hookline \
	    $(DESTDIR)$(PREFIX)/lib/hookline/connectors \
	    $(DESTDIR)$(PREFIX)/include/hookline $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(BUILD)/hookline $(DESTDIR)$(PREFIX)/bin/hookline
	for d in schemas policies; do \
	    if [ -d $$d ]; then cp -R $$d $(DESTDIR)$(PREFIX)/share/hookline/; fi; \
	done
	install -m 0644 $(CONN_SO) $(DESTDIR)$(PREFIX)/lib/hookline/connectors/
	install -m 0644 engine/include/hookline/connector.h \
	    $(DESTDIR)$(PREFIX)/include/hookline/
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' \
	    'connectorsdir=$${prefix}/lib/hookline/connectors' '' \
	    'Name: hookline-connector' \
	    'Description: SDK for hookline connector plugins' \
	    'Version: $(VERSION)' \
	    'Cflags: -I$${includedir} -fPIC -fvisibility=hidden' \
	    >$(DESTDIR)$(PREFIX)/lib/pkgconfig/hookline-connector.pc

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
