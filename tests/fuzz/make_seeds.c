/* Writes the seed corpus of fuzz_decode: every sample event in both framings. */
#include <stdio.h>
#include <string.h>

#include "sample_events.h"
#include "saga/serde.h"

int main(int argc, char **argv)
{
    struct saga_serde *s;
    struct saga_buf buf = {0};
    char err[512];

    if (argc != 2 || saga_serde_new(&s, NULL, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 64;
    }
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        for (int minimal = 0; minimal <= 1; minimal++) {
            struct saga_event ev;
            char path[4096];
            FILE *f;
            sample_event(&ev, (saga_event_type_t)t, minimal);
            if (saga_serde_encode(s, &ev, &buf, err, sizeof(err)) != SAGA_OK)
                return 1;
            for (int framing = 0; framing < 2; framing++) {
                snprintf(path, sizeof(path), "%s/%s-%s-%s", argv[1],
                         saga_event_type_name((saga_event_type_t)t), minimal ? "min" : "full",
                         framing ? "confluent" : "single");
                if (!(f = fopen(path, "wb")))
                    return 1;
                if (framing) { /* 00 | id t+1 | body */
                    unsigned char hdr[5] = {0, 0, 0, 0, (unsigned char)(t + 1)};
                    fwrite(hdr, 1, 5, f);
                    fwrite(buf.data + 10, 1, buf.len - 10, f);
                } else {
                    fwrite(buf.data, 1, buf.len, f);
                }
                fclose(f);
            }
        }
    }
    saga_buf_release(&buf);
    saga_serde_destroy(s);
    return 0;
}
