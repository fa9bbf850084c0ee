/*
 * bench_serde: encode and decode rates of a five-line OrderPlaced through the
 * serde (struct conversion, validation and framing included), next to a bare
 * avro_value_write / avro_value_read of the same record with the value reused,
 * in the same run on one core. The target is the serde at >= 60% of bare.
 *
 *   bench_serde [seconds in all per path, default 5] [only: encode|decode, for profiling]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <avro.h>

#include "sample_events.h"
#include "saga/serde.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Rate of body over `seconds`; the caller keeps the best of several rounds. */
#define MEASURE(seconds, body, out_rate)                                                           \
    do {                                                                                           \
        long n_ = 0;                                                                               \
        double t0_ = now(), t_, r_;                                                                \
        do {                                                                                       \
            for (int i_ = 0; i_ < 1000; i_++) {                                                    \
                body;                                                                              \
            }                                                                                      \
            n_ += 1000;                                                                            \
        } while ((t_ = now() - t0_) < (seconds));                                                  \
        r_ = (double)n_ / t_;                                                                      \
        if (r_ > out_rate)                                                                         \
            out_rate = r_;                                                                         \
    } while (0)

#define ROUNDS 5

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    const char *only = argc > 2 ? argv[2] : NULL;
    struct saga_serde *s;
    struct saga_buf buf = {0};
    struct saga_event ev, got = {0};
    char err[512], out[4096];
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    avro_writer_t w;
    avro_reader_t r;
    const char *json = saga_serde_schema_json(SAGA_EV_ORDER_PLACED);
    double bare_enc, bare_dec, serde_enc, serde_dec;
    size_t body_len;

    if (saga_serde_new(&s, NULL, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "bench_serde: %s\n", err);
        return 1;
    }
    sample_order_placed5(&ev);
    if (saga_serde_encode(s, &ev, &buf, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "bench_serde: %s\n", err);
        return 1;
    }
    body_len = buf.len - 10;

    /* The bare path: the same record already in an avro-c value, written and read back. */
    avro_schema_from_json_length(json, strlen(json), &schema);
    iface = avro_generic_class_from_schema(schema);
    avro_generic_value_new(iface, &value);
    r = avro_reader_memory((const char *)buf.data + 10, (int64_t)body_len);
    avro_value_read(r, &value);
    w = avro_writer_memory(out, sizeof(out));

    if (only) { /* one path alone, for a profiler */
        for (long i = 0; i < (long)(seconds * 100000); i++) {
            if (strcmp(only, "encode") == 0)
                saga_serde_encode(s, &ev, &buf, err, sizeof(err));
            else
                saga_serde_decode(s, buf.data, buf.len, &got, err, sizeof(err));
        }
        return 0;
    }
    printf("bench_serde: 5-line OrderPlaced, %zu bytes of Avro body (+10 framing), one core, "
           "best of %d rounds over %.1fs\n",
           body_len, ROUNDS, seconds);
    bare_enc = bare_dec = serde_enc = serde_dec = 0;
    /* Interleaved rounds, best of each: the machine's noise hits every path alike. */
    for (int round = 0; round < ROUNDS; round++) {
        double sl = seconds / ROUNDS;
        MEASURE(
            sl,
            {
                avro_writer_reset(w);
                avro_value_write(w, &value);
            },
            bare_enc);
        MEASURE(sl, saga_serde_encode(s, &ev, &buf, err, sizeof(err)), serde_enc);
        MEASURE(
            sl,
            {
                avro_reader_memory_set_source(r, (const char *)buf.data + 10, (int64_t)body_len);
                avro_value_read(r, &value);
            },
            bare_dec);
        MEASURE(sl, saga_serde_decode(s, buf.data, buf.len, &got, err, sizeof(err)), serde_dec);
    }
    printf("  %-34s %10.0f msg/s\n", "bare avro_value_write", bare_enc);
    printf("  %-34s %10.0f msg/s\n", "serde encode (struct -> framed)", serde_enc);
    printf("  %-34s %10.0f msg/s\n", "bare avro_value_read", bare_dec);
    printf("  %-34s %10.0f msg/s\n", "serde decode (framed -> struct)", serde_dec);
    printf("\n  encode: serde %.2f of bare (%.0f vs %.0f msg/s, %.1f MB/s)  target >= 0.60  %s\n",
           serde_enc / bare_enc, serde_enc, bare_enc, serde_enc * (double)buf.len / 1e6,
           serde_enc / bare_enc >= 0.6 ? "MET" : "MISSED");
    printf("  decode: serde %.2f of bare (%.0f vs %.0f msg/s, %.1f MB/s)  target >= 0.60  %s\n",
           serde_dec / bare_dec, serde_dec, bare_dec, serde_dec * (double)buf.len / 1e6,
           serde_dec / bare_dec >= 0.6 ? "MET" : "MISSED");
    printf("  (NOTES.md measured the bare path at ~1.8 M encodes/s and ~0.77 M decodes/s on "
           "this kind of machine)\n");
    printf("{\"bench\":\"serde\",\"bytes\":%zu,\"bare_encode\":%.0f,\"serde_encode\":%.0f,"
           "\"bare_decode\":%.0f,\"serde_decode\":%.0f}\n",
           buf.len, bare_enc, serde_enc, bare_dec, serde_dec);

    saga_event_release(&got);
    saga_buf_release(&buf);
    avro_writer_free(w);
    avro_reader_free(r);
    avro_value_decref(&value);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    saga_serde_destroy(s);
    return 0;
}
