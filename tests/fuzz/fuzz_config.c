/* fuzz_config: arbitrary YAML text through the config loader (issue 14).
 *
 * Why: the config file is written by operators and editors and reloaded live; any text,
 * truncated, binary or hostile (anchors, aliases, deep nesting, huge numbers), must give
 * either a valid snapshot or diagnostics, and never crash, leak or read out of bounds.
 * Each input is loaded with config_load_string (YAML -> validated snapshot, templates,
 * patterns and expressions compiled), then the snapshot is released (config_unref) and
 * the diagnostics freed. Single thread; no sockets. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        log_set_level(TB_LOG_ERROR);
        once = 1;
    }
    struct config_diag diag = {0};
    struct tb_config *cfg = config_load_string("fuzz.yaml", (const char *)data, size, &diag);
    config_unref(cfg);
    config_diag_free(&diag);
    return 0;
}
