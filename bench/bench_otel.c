/*
 * bench_otel N: the CPU one exported span costs a process (docs/BENCHMARKS.md, "Tracing"):
 * N process spans with the attributes the consumer runtime gives them, begun and ended on
 * this thread while the exporter thread sends them to OTEL_EXPORTER_OTLP_ENDPOINT (a sink:
 * scripts/bench tracing starts tests/trace/otlp_receiver.py --discard). Prints the process's
 * CPU per span (both threads), producing and exporting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "saga/otel.h"
#include "saga/trace.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    char err[256], tp[56], self[56];
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    struct saga_otel_stats st;
    double t0, t1;

    if (saga_otel_init("bench_otel", err, sizeof(err))) {
        fprintf(stderr, "bench_otel: %s\n", err);
        return 1;
    }
    if (!saga_otel_enabled()) {
        fprintf(stderr, "bench_otel: set OTEL_EXPORTER_OTLP_ENDPOINT\n");
        return 1;
    }
    saga_traceparent_new(tp);
    t0 = cpu_s();
    for (int i = 0; i < n; i++) {
        struct saga_span s;
        saga_otel_child(tp, self);
        if (saga_span_begin(&s, "OrderPlaced process", SAGA_SPAN_CONSUMER, self, tp)) {
            saga_span_str(&s, "saga.order_id", "101a8ab9-0000-4000-8000-000000000001");
            saga_span_str(&s, "messaging.system", "kafka");
            saga_span_str(&s, "messaging.operation.type", "process");
            saga_span_str(&s, "messaging.consumer.group.name", "inventory-service");
            saga_span_str(&s, "messaging.destination.name", "orders");
            saga_span_str(&s, "messaging.destination.partition.id", "3");
            saga_span_int(&s, "messaging.kafka.offset", 12345 + i);
            saga_span_str(&s, "messaging.kafka.message.key",
                          "101a8ab9-0000-4000-8000-000000000001");
            saga_span_str(&s, "messaging.message.id", "201a8ab9-0000-4000-8000-000000000001");
            saga_span_str(&s, "saga.event_type", "OrderPlaced");
            saga_span_str(&s, "saga.outcome", "handled");
            saga_span_end(&s);
        }
        if (i % 200 == 199) { /* ~200 spans per ms: the queue keeps up, nothing dropped */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    saga_otel_shutdown(); /* the rest exported */
    t1 = cpu_s();
    saga_otel_stats(&st);
    printf("bench_otel: %d spans, %.2f us of CPU per span (made and exported; %llu exported, "
           "%llu dropped)\n",
           n, (t1 - t0) / n * 1e6, (unsigned long long)st.exported,
           (unsigned long long)(st.dropped_queue_full + st.dropped_export_failed));
    return 0;
}
