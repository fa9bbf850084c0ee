package saga.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.temporal.ChronoUnit;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * The outbox relay's job done by Debezium: the embedded engine with the PostgreSQL
 * connector (pgoutput) and the outbox event router, producing to Kafka with a
 * KafkaProducer (acks=all, idempotence), as Debezium Server's Kafka sink does: a batch
 * is sent, every acknowledgement awaited, then its offsets are marked processed
 * (at-least-once; a failed send stops the engine without committing the batch).
 *
 * <p>The rows are this project's outbox rows (common/src/migrate.c): the router takes the
 * topic from {@code topic}, the key from {@code msg_key}, the value from {@code payload}
 * (bytea, passed on as the same bytes) and places {@code headers} (jsonb) and
 * {@code created_at} in Connect headers; this class expands the headers JSON object into
 * one Kafka header per member, as outbox-relay does, and uses {@code created_at} only to
 * measure insert to Kafka ack. The router's own {@code id} header (our event_id, which the
 * headers JSON already carries) is not produced, so a consumer sees the relay's message.
 *
 * <p>Environment: DBZ_SOURCE (postgresql://user:password@host:port/db, a role that may
 * replicate and create a publication), KAFKA_BOOTSTRAP_SERVERS, DBZ_SLOT (replication slot
 * and publication name), DBZ_OFFSETS (offsets file), DBZ_POLL_INTERVAL_MS (poll.interval.ms,
 * default 1: Debezium's own default, 500, waits up to half a second per batch),
 * DBZ_PROPERTIES (space-separated key=value engine and connector properties that override these).
 * On SIGTERM: stops the engine (committing what was acknowledged) and prints one line,
 * "debezium-relay: stopped after publishing N rows; insert to kafka ack p50 .. ms, p99 .. ms,
 * max .. ms".
 */
public final class DebeziumRelay {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final KafkaProducer<byte[], byte[]> producer;
    private long published;
    private long[] lat = new long[1 << 16];
    private int nlat;

    private DebeziumRelay(KafkaProducer<byte[], byte[]> producer) {
        this.producer = producer;
    }

    private static String env(String name, String def) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            if (def == null) {
                throw new IllegalArgumentException(name + " is required");
            }
            return def;
        }
        return v;
    }

    private static long nowMicros() {
        return ChronoUnit.MICROS.between(Instant.EPOCH, Instant.now());
    }

    private static byte[] bytes(Object o) {
        if (o == null) {
            return null;
        }
        if (o instanceof byte[]) {
            return (byte[]) o;
        }
        if (o instanceof ByteBuffer) {
            ByteBuffer b = ((ByteBuffer) o).duplicate();
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        }
        return o.toString().getBytes(StandardCharsets.UTF_8);
    }

    private synchronized void record(long micros) {
        if (nlat == lat.length) {
            lat = Arrays.copyOf(lat, lat.length * 2);
        }
        lat[nlat++] = micros;
    }

    /** One batch: convert, send all, await every ack, then mark the batch processed. */
    private void handleBatch(List<RecordChangeEvent<SourceRecord>> records,
                             DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
            throws InterruptedException {
        CountDownLatch acks = new CountDownLatch(records.size());
        AtomicReference<Exception> failed = new AtomicReference<>();
        for (RecordChangeEvent<SourceRecord> ev : records) {
            SourceRecord r = ev.record();
            if (r.topic() == null || r.value() == null) { /* heartbeats, tombstones: nothing to send */
                acks.countDown();
                continue;
            }
            Object v = r.value();
            byte[] payload = bytes(v instanceof Struct ? ((Struct) v).get("payload") : v);
            RecordHeaders headers = new RecordHeaders();
            long created = -1;
            for (Iterator<Header> it = r.headers().iterator(); it.hasNext();) {
                Header h = it.next();
                if (h.value() == null || h.key().equals("id")) {
                    continue;
                }
                if (h.key().equals("saga_created_at")) {
                    OffsetDateTime t = OffsetDateTime.parse(h.value().toString());
                    created = ChronoUnit.MICROS.between(Instant.EPOCH, t.toInstant());
                } else if (h.key().equals("saga_headers")) {
                    try {
                        JsonNode obj = JSON.readTree(h.value().toString());
                        for (Iterator<Map.Entry<String, JsonNode>> f = obj.fields(); f.hasNext();) {
                            Map.Entry<String, JsonNode> m = f.next();
                            headers.add(m.getKey(), m.getValue().asText().getBytes(StandardCharsets.UTF_8));
                        }
                    } catch (Exception e) {
                        throw new IllegalStateException("outbox headers are not a JSON object", e);
                    }
                } else {
                    headers.add(h.key(), bytes(h.value()));
                }
            }
            final long createdAt = created;
            ProducerRecord<byte[], byte[]> out =
                    new ProducerRecord<>(r.topic(), null, bytes(r.key()), payload, headers);
            producer.send(out, (md, e) -> {
                if (e != null) {
                    failed.compareAndSet(null, e);
                } else if (createdAt > 0) {
                    record(nowMicros() - createdAt);
                }
                acks.countDown();
            });
        }
        acks.await();
        if (failed.get() != null) {
            /* Nothing of this batch is marked: the engine stops, a restart sends it again. */
            throw new IllegalStateException("kafka: " + failed.get().getMessage(), failed.get());
        }
        for (RecordChangeEvent<SourceRecord> ev : records) {
            committer.markProcessed(ev);
        }
        committer.markBatchFinished();
        synchronized (this) {
            published += records.size();
        }
    }

    private synchronized String summary() {
        long[] s = Arrays.copyOf(lat, nlat);
        Arrays.sort(s);
        double p50 = nlat > 0 ? s[nlat / 2] / 1000.0 : 0;
        double p99 = nlat > 0 ? s[(int) ((long) nlat * 99 / 100)] / 1000.0 : 0;
        double max = nlat > 0 ? s[nlat - 1] / 1000.0 : 0;
        return String.format("debezium-relay: stopped after publishing %d rows; insert to kafka ack"
                + " p50 %.1f ms, p99 %.1f ms, max %.1f ms", published, p50, p99, max);
    }

    public static void main(String[] args) throws Exception {
        URI src = URI.create(env("DBZ_SOURCE", null));
        String[] userInfo = src.getUserInfo().split(":", 2);
        String slot = env("DBZ_SLOT", "saga_outbox");

        Properties p = new Properties();
        p.setProperty("name", "saga-outbox");
        p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore");
        p.setProperty("offset.storage.file.filename", env("DBZ_OFFSETS", null));
        p.setProperty("offset.flush.interval.ms", "1000");
        p.setProperty("database.hostname", src.getHost());
        p.setProperty("database.port", String.valueOf(src.getPort() > 0 ? src.getPort() : 5432));
        p.setProperty("database.user", URLDecoder.decode(userInfo[0], StandardCharsets.UTF_8));
        p.setProperty("database.password",
                URLDecoder.decode(userInfo.length > 1 ? userInfo[1] : "", StandardCharsets.UTF_8));
        p.setProperty("database.dbname", src.getPath().replaceFirst("^/", ""));
        p.setProperty("topic.prefix", "saga");
        p.setProperty("plugin.name", "pgoutput");
        p.setProperty("slot.name", slot);
        p.setProperty("publication.name", slot);
        p.setProperty("publication.autocreate.mode", "filtered");
        p.setProperty("table.include.list", "public.outbox");
        /* The outbox's past is the relay's business: stream what commits from now on. */
        p.setProperty("snapshot.mode", "no_data");
        p.setProperty("binary.handling.mode", "bytes");
        p.setProperty("poll.interval.ms", env("DBZ_POLL_INTERVAL_MS", "1"));
        p.setProperty("transforms", "outbox");
        p.setProperty("transforms.outbox.type", "io.debezium.transforms.outbox.EventRouter");
        p.setProperty("transforms.outbox.table.field.event.id", "event_id");
        p.setProperty("transforms.outbox.table.field.event.key", "msg_key");
        p.setProperty("transforms.outbox.table.field.event.payload", "payload");
        p.setProperty("transforms.outbox.route.by.field", "topic");
        p.setProperty("transforms.outbox.route.topic.replacement", "${routedByValue}");
        p.setProperty("transforms.outbox.table.fields.additional.placement",
                "headers:header:saga_headers,created_at:header:saga_created_at");
        for (String kv : env("DBZ_PROPERTIES", "").trim().split("\\s+")) { /* k=v overrides, for tuning */
            if (kv.contains("=")) {
                p.setProperty(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
            }
        }

        Properties kp = new Properties();
        kp.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, env("KAFKA_BOOTSTRAP_SERVERS", null));
        kp.setProperty(ProducerConfig.CLIENT_ID_CONFIG, "debezium-relay");
        kp.setProperty(ProducerConfig.ACKS_CONFIG, "all");
        kp.setProperty(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        kp.setProperty(ProducerConfig.LINGER_MS_CONFIG, "0"); /* as outbox-relay */
        kp.setProperty(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        kp.setProperty(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(kp);
        DebeziumRelay relay = new DebeziumRelay(producer);

        CountDownLatch ran = new CountDownLatch(1);
        AtomicReference<String> outcome = new AtomicReference<>("");
        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine =
                DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
                        .using(p)
                        .notifying(relay::handleBatch)
                        .using(new DebeziumEngine.ConnectorCallback() {
                            @Override
                            public void taskStarted() {
                                System.out.println("debezium-relay: task started, slot " + slot);
                                System.out.flush();
                            }
                        })
                        .using((success, message, error) -> {
                            if (!success) {
                                outcome.set(message + (error != null ? ": " + error : ""));
                            }
                        })
                        .build();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            try {
                engine.close();
                ran.await(60, TimeUnit.SECONDS);
            } catch (Exception e) {
                System.err.println("debezium-relay: close: " + e);
            }
            producer.close();
            System.out.println(relay.summary());
            System.out.flush();
        }));
        try {
            engine.run();
        } finally {
            ran.countDown();
        }
        if (!stopping) {
            System.err.println("debezium-relay: the engine stopped: " + outcome.get());
            System.exit(2);
        }
    }

    private static volatile boolean stopping;
}
