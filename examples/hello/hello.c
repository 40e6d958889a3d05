/* The example program: prints a greeting and the machine it runs on. */
#include <stdio.h>
#include <sys/utsname.h>

int main(void) {
    struct utsname u;
    if (uname(&u) != 0) {
        perror("uname");
        return 1;
    }
    printf("hello from lade on %s\n", u.machine);
    return 0;
}
