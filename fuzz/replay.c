/* Runs a fuzz target's LLVMFuzzerTestOneInput over files and directories of inputs, for builds
 * without libFuzzer (gcc, valgrind): this is how ctest replays every seed and every crash that
 * was ever found. `replay DIR|FILE...` exits 0 if no input crashed (a crash aborts). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t k;
    while (buf != NULL && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (buf == NULL) {
        exit(2);
    }
    /* A copy of exactly n bytes, so that an overread shows under ASan/valgrind. */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 1;
}

static long run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        return run_file(path);
    }
    DIR *d = opendir(path);
    struct dirent *e;
    char **names = NULL;
    size_t count = 0;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        names = realloc(names, (count + 1) * sizeof *names);
        names[count] = malloc(strlen(path) + strlen(e->d_name) + 2);
        sprintf(names[count], "%s/%s", path, e->d_name);
        count++;
    }
    if (d != NULL) {
        closedir(d);
    }
    qsort(names, count, sizeof *names, cmp);
    long total = 0;
    for (size_t i = 0; i < count; i++) {
        total += run_path(names[i]);
        free(names[i]);
    }
    free(names);
    return total;
}

int main(int argc, char **argv) {
    long total = 0;
    for (int i = 1; i < argc; i++) {
        total += run_path(argv[i]);
    }
    printf("replayed %ld inputs\n", total);
    return 0;
}
