/*
 * trace_poison BOOTSTRAP TOPIC KEY TRACEPARENT: produces bytes that decode as no event to
 * TOPIC, keyed by KEY, with a traceparent header, and waits for the broker's
 * acknowledgement. test_traces.py uses it to see a dead letter in an order's trace.
 * Exit 0 once acknowledged, 1 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

static rd_kafka_resp_err_t delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivered = m->err;
}

int main(int argc, char **argv)
{
    static char value[] = "saga trace test: not an event";
    rd_kafka_conf_t *conf;
    rd_kafka_headers_t *h;
    rd_kafka_t *rk;
    char err[256];

    if (argc != 5) {
        fprintf(stderr, "usage: trace_poison BOOTSTRAP TOPIC KEY TRACEPARENT\n");
        return 2;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err))) {
        fprintf(stderr, "trace_poison: %s\n", err);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
        fprintf(stderr, "trace_poison: %s\n", err);
        return 1;
    }
    h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "traceparent", -1, argv[4], -1);
    if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(argv[3], strlen(argv[3])),
                          RD_KAFKA_V_VALUE(value, sizeof(value) - 1),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_END)) {
        fprintf(stderr, "trace_poison: produce failed\n");
        rd_kafka_headers_destroy(h);
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_flush(rk, 15000);
    rd_kafka_destroy(rk);
    if (delivered) {
        fprintf(stderr, "trace_poison: not delivered: %s\n", rd_kafka_err2str(delivered));
        return 1;
    }
    return 0;
}
