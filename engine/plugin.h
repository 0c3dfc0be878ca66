/* plugin.h - connector plugins: found, loaded, checked, and their configured instances. */
#ifndef HL_PLUGIN_H
#define HL_PLUGIN_H

#include "config.h"
#include "diag.h"
#include "queue.h"
#include "sdk.h"

#include <stdio.h>

/* The connector instances of one configuration, in cfg->connectors order. */
typedef struct hl_plugins hl_plugins;

/* The folders plugins are loaded from: connectors_path, or else the
 * executable's connectors/ (the build tree) and ../lib/hookline/connectors
 * (an installed hookline). Returns how many were written (at most cap). */
size_t hl_plugin_dirs(const hl_config *cfg, char (*dirs)[4096], size_t cap);

/*
 * Load the plugin of every configured connector (dlopen RTLD_NOW |
 * RTLD_LOCAL), check its descriptor and ABI version, check the connector's
 * section against the plugin's key table, and create the instance. Every
 * problem goes to d naming the file, the instance and what to do. Returns
 * 0 with *out holding one reference, or HL_ECONFIG / HL_EPLUGIN / HL_EABI
 * with *out NULL. The set holds a reference to cfg.
 */
int hl_plugins_load(const hl_config *cfg, hl_diags *d, hl_plugins **out);

hl_plugins *hl_plugins_retain(hl_plugins *p);
/* Drop a reference; the last destroys the instances and unloads. */
void hl_plugins_release(hl_plugins *p);

/* The instance of cfg->connectors[i]. */
hlc_instance *hl_plugins_instance(hl_plugins *p, size_t i);
size_t hl_plugins_count(const hl_plugins *p);

/* The configuration the set was loaded from. */
const hl_config *hl_plugins_config(const hl_plugins *p);

/* Let the instances' kv_* calls reach q (NULL: detach). */
void hl_plugins_attach(hl_plugins *p, hl_queue *q);

/* `hookline connectors`: every plugin found in the folders, with its keys
 * (only the one named when name is not NULL). Returns 0, or HL_ENOTFOUND
 * when none (or not that one) was found. */
int hl_plugins_describe(const hl_config *cfg, const char *name, FILE *out);

#endif
