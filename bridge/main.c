/* main: placeholder until the daemon lands (being written now). */
int main(void) { return 0; }
