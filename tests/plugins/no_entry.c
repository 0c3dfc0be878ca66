/* no_entry.c - a shared object that is not a connector: it exports no entry function. */
int no_entry_answer(void);
__attribute__((visibility("default"))) int no_entry_answer(void)
{
    return 42;
}
