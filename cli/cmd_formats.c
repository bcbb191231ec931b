/* cmd_formats.c - STUB: being written. */
int qf_cmd_formats(int argc, char **argv);
int qf_cmd_formats(int argc, char **argv) { (void)argc; (void)argv; return 0; }
