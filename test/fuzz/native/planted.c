/* Not a real target: a heap overflow on inputs starting with "BUG", so that the fuzz check's own
 * test can show a crash fails the run and leaves a reproducer (scripts/fuzz.sh --target planted). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 3 && memcmp(data, "BUG", 3) == 0) {
    uint8_t *p = malloc(size);
    memcpy(p, data, size);
    volatile uint8_t x = p[size]; /* one past the end */
    (void)x;
    free(p);
  }
  return 0;
}
