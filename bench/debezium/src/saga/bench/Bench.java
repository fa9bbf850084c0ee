package saga.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The outbox relay next to Debezium on the same rows, measured the same way.
 *
 * <p>For each target (outbox-relay, then Debezium's embedded engine in {@link DebeziumRelay})
 * in a fresh database with this project's outbox table and a fresh six-partition topic:
 *
 * <ol>
 *   <li>warm-up: the process started, one row published (its start-up is not measured),
 *       then N rows in transactions of 1,000 published while it runs; stopped.
 *   <li>drain: N rows committed while it is stopped, the process started; rate from the
 *       first row acknowledged by the broker to the N-th (the topic's end offsets, polled
 *       every 5 ms: the same yardstick for both, whatever each marks in the database).
 *   <li>latency: the process started, one row published first (its producer's start is
 *       not measured); then two writers commit one row each per 2/rate s (rate rows/s in
 *       all), for 5 s (what a restart costs: a JVM is still compiling) and then for S
 *       seconds (the steady state), in the same process; a Kafka consumer
 *       (fetch.max.wait.ms=1) takes, for each row, the time from just before its INSERT to
 *       receiving it (per row in BENCH_OUT/*.csv). Each process also reports its own figure
 *       for both passes when it stops: outbox-relay from the commit timestamp to the
 *       delivery report, Debezium from created_at (the insert) to the producer's callback.
 * </ol>
 *
 * <p>Usage: SAGA_STACK_ENV=stack.env java saga.bench.Bench [both | relay|debezium ...] (the
 * targets in the order to run; both = relay debezium) with
 * BENCH_RELAY_BIN (the outbox-relay binary), BENCH_ROWS (50000), BENCH_RATE (1000),
 * BENCH_SECONDS (10), BENCH_OUT (a directory for the logs); DBZ_JAVA_OPTS, DBZ_PROPERTIES and
 * DBZ_POLL_INTERVAL_MS are passed on to the Debezium process.
 */
public final class Bench {
    private static final String PAYLOAD =
            "{\"a realistic payload is about two hundred and seventy bytes; this "
            + "one is shorter but the relay does not look inside\"}";
    private static final String INSERT =
            "INSERT INTO outbox (topic, msg_key, event_type, event_id, payload, headers)"
            + " VALUES (?, ?, 'BenchEvent', ?, ?, ?::jsonb)";
    /* The same outbox as common/src/migrate.c (outbox_v1). */
    private static final String DDL =
            "CREATE TABLE outbox ("
            + "  id           bigserial   PRIMARY KEY,"
            + "  topic        text        NOT NULL,"
            + "  msg_key      text        NOT NULL,"
            + "  event_type   text        NOT NULL,"
            + "  event_id     text        NOT NULL,"
            + "  payload      bytea       NOT NULL,"
            + "  headers      jsonb       NOT NULL DEFAULT '{}',"
            + "  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),"
            + "  published_at timestamptz"
            + ");"
            + "CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;"
            + "CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;"
            + "GRANT USAGE ON SCHEMA public TO outbox_relay;"
            + "GRANT SELECT, DELETE, UPDATE (published_at) ON outbox TO outbox_relay;";
    private static final int PARTITIONS = 6;

    private static Map<String, String> stack = new HashMap<>();
    private static int rows;
    private static int rate;
    private static double seconds;
    private static Path out;
    private static int runs;

    /** What one target measured. */
    static final class Result {
        String label;
        double drainRate;
        double drainSeconds;
        double startToFirst;
        long resent;
        long drainRssKb;
        long latencyRssKb;
        int events;
        double p50;
        double p99;
        double max;
        double catchUpMs;
        double[] cold = {0, 0, 0};
        String inside = "";
    }

    private static String stackEnv(String key) {
        String v = System.getenv(key) != null && !System.getenv(key).isEmpty() ? System.getenv(key) : stack.get(key);
        if (v == null) {
            throw new IllegalStateException(key + " is not in the stack's environment");
        }
        return v;
    }

    private static String env(String key, String def) {
        String v = System.getenv(key);
        return v == null || v.isEmpty() ? def : v;
    }

    private static long nowMicros() {
        return ChronoUnit.MICROS.between(Instant.EPOCH, Instant.now());
    }

    private static void sleepMs(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static Connection connect(String db, String user, String password) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", password);
        return DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + stackEnv("STACK_PG_PORT") + "/" + db, p);
    }

    private static Connection superuser(String db) throws SQLException {
        return connect(db, "postgres", stackEnv("STACK_PW_POSTGRES"));
    }

    private static Connection owner(String db) throws SQLException {
        Connection c = connect(db, "order_service", stackEnv("STACK_PW_ORDER"));
        c.setAutoCommit(false);
        return c;
    }

    private static void exec(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute(sql);
        }
    }

    private static String scalar(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            return r.next() ? r.getString(1) : null;
        }
    }

    /** The row bench_relay writes: key order-(seq % 1000), event_id e-seq in the headers. */
    private static void bind(PreparedStatement ps, String topic, long seq, byte[] payload) throws SQLException {
        ps.setString(1, topic);
        ps.setString(2, "order-" + (seq % 1000));
        ps.setString(3, "e-" + seq);
        ps.setBytes(4, payload);
        ps.setString(5, "{\"event_id\": \"e-" + seq + "\"}");
    }

    /** n rows in transactions of 1,000, each with the NOTIFY an outbox append sends. */
    private static void fill(String db, String topic, long first, int n, byte[] payload) throws SQLException {
        try (Connection c = owner(db); PreparedStatement ps = c.prepareStatement(INSERT)) {
            for (int i = 0; i < n;) {
                for (int k = 0; k < 1000 && i < n; k++, i++) {
                    bind(ps, topic, first + i, payload);
                    ps.addBatch();
                }
                ps.executeBatch();
                exec(c, "SELECT pg_notify('saga_outbox', '')");
                c.commit();
            }
        }
    }

    private static void insertOne(String db, String topic, long seq, String payload) throws SQLException {
        fill(db, topic, seq, 1, payload.getBytes(StandardCharsets.UTF_8));
    }

    /** One writer of the latency pass: a row per period, the time just before its INSERT as payload. */
    static final class Writer extends Thread {
        final String db;
        final String topic;
        final int id;
        final int perSecond;
        final double secs;
        volatile long written;
        volatile long lastCommit;
        volatile Exception error;

        Writer(String db, String topic, int id, int perSecond, double secs) {
            this.db = db;
            this.topic = topic;
            this.id = id;
            this.perSecond = perSecond;
            this.secs = secs;
        }

        @Override
        public void run() {
            String sql = "WITH row AS (" + INSERT + " RETURNING id) SELECT id, pg_notify('saga_outbox', '') FROM row";
            try (Connection c = owner(db); PreparedStatement ps = c.prepareStatement(sql)) {
                long start = nowMicros();
                long period = 1000000L / perSecond;
                for (long i = 0;; i++) {
                    long due = start + i * period;
                    long now = nowMicros();
                    if (now - start > (long) (secs * 1e6)) {
                        break;
                    }
                    if (due > now) {
                        LockSupport.parkNanos((due - now) * 1000);
                    }
                    bind(ps, topic, (long) id * 100000000L + i,
                            Long.toString(nowMicros()).getBytes(StandardCharsets.UTF_8));
                    try (ResultSet r = ps.executeQuery()) {
                        r.next();
                    }
                    c.commit();
                    lastCommit = nowMicros();
                    written++;
                }
            } catch (Exception e) {
                error = e;
            }
        }
    }

    private static Properties kafkaProps() {
        Properties p = new Properties();
        p.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, stackEnv("KAFKA_BOOTSTRAP_SERVERS"));
        p.setProperty(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.setProperty(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.setProperty(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "1");
        return p;
    }

    private static List<TopicPartition> partitions(String topic) {
        List<TopicPartition> l = new ArrayList<>();
        for (int i = 0; i < PARTITIONS; i++) {
            l.add(new TopicPartition(topic, i));
        }
        return l;
    }

    /** Messages on the topic: the sum of its partitions' end offsets. */
    private static long total(KafkaConsumer<byte[], byte[]> c, String topic) {
        long n = 0;
        for (long v : c.endOffsets(partitions(topic), Duration.ofSeconds(30)).values()) {
            n += v;
        }
        return n;
    }

    private static void waitTotal(KafkaConsumer<byte[], byte[]> c, String topic, long want, long timeoutMs,
                                  Process p, Path log) throws IOException {
        long end = System.currentTimeMillis() + timeoutMs;
        while (total(c, topic) < want) {
            if (!p.isAlive()) {
                throw new IllegalStateException("the process under test exited; see " + log + ":\n" + tail(log));
            }
            if (System.currentTimeMillis() > end) {
                throw new IllegalStateException("timed out waiting for " + want + " messages; see " + log);
            }
            sleepMs(5);
        }
    }

    private static String tail(Path log) throws IOException {
        List<String> l = Files.readAllLines(log, StandardCharsets.UTF_8);
        return String.join("\n", l.subList(Math.max(0, l.size() - 15), l.size()));
    }

    private static long vmHwmKb(Process p) {
        try {
            for (String l : Files.readAllLines(Paths.get("/proc/" + p.pid() + "/status"))) {
                if (l.startsWith("VmHWM:")) {
                    return Long.parseLong(l.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException e) {
            return -1;
        }
        return -1;
    }

    private static Process start(String target, String db, String slot, Path log) throws IOException {
        ProcessBuilder pb;
        if (target.equals("relay")) {
            pb = new ProcessBuilder(env("BENCH_RELAY_BIN", "outbox-relay"));
            pb.environment().put("RELAY_SOURCES", "bench=postgresql://outbox_relay:"
                    + stackEnv("STACK_PW_OUTBOX_RELAY") + "@127.0.0.1:" + stackEnv("STACK_PG_PORT") + "/" + db);
            pb.environment().put("RELAY_POLL_INTERVAL", "1s");
            pb.environment().put("LOG_LEVEL", "info");
            pb.environment().put("HTTP_LISTEN", "127.0.0.1:0");
        } else {
            List<String> cmd = new ArrayList<>();
            cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
            cmd.addAll(Arrays.asList(env("DBZ_JAVA_OPTS", "-Xms64m -Xmx512m -XX:+UseG1GC").trim().split("\\s+")));
            if (System.getProperty("log4j.configuration") != null) {
                cmd.add("-Dlog4j.configuration=" + System.getProperty("log4j.configuration"));
            }
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), DebeziumRelay.class.getName()));
            pb = new ProcessBuilder(cmd);
            pb.environment().put("DBZ_SOURCE", "postgresql://postgres:" + stackEnv("STACK_PW_POSTGRES")
                    + "@127.0.0.1:" + stackEnv("STACK_PG_PORT") + "/" + db);
            pb.environment().put("DBZ_SLOT", slot);
            pb.environment().put("DBZ_OFFSETS", out.resolve(db + ".offsets").toString());
        }
        pb.environment().put("KAFKA_BOOTSTRAP_SERVERS", stackEnv("KAFKA_BOOTSTRAP_SERVERS"));
        pb.redirectErrorStream(true);
        pb.redirectOutput(log.toFile());
        Process p = pb.start();
        CHILDREN.add(p);
        return p;
    }

    /* What this harness started, stopped when it exits for whatever reason. */
    private static final List<Process> CHILDREN = new java.util.concurrent.CopyOnWriteArrayList<>();

    private static void stop(Process p) throws InterruptedException {
        p.destroy(); /* SIGTERM: both stop cleanly, committing what was acknowledged */
        if (!p.waitFor(90, TimeUnit.SECONDS)) {
            System.err.println("bench: the process did not stop in 90 s; killing it");
            p.destroyForcibly().waitFor();
        }
        CHILDREN.remove(p);
    }

    private static final Pattern INSIDE =
            Pattern.compile("(\\w+) to kafka ack p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, max (under )?([0-9.]+) ms");

    private static String inside(Path log) throws IOException {
        String found = "";
        for (String l : Files.readAllLines(log, StandardCharsets.UTF_8)) {
            Matcher m = INSIDE.matcher(l);
            if (m.find()) {
                found = String.format("%s → ack %s / %s / %s%s", m.group(1), m.group(2), m.group(3),
                        m.group(4) != null ? "< " : "", m.group(5));
            }
        }
        return found;
    }

    private static Result run(String target) throws Exception {
        Result res = new Result();
        String tag = target.equals("relay") ? "relay" : "dbz";
        String db = "bench_" + tag + "_" + ProcessHandle.current().pid() + "_" + (++runs);
        String slot = db;
        String topic = "bench-" + tag + "-" + ProcessHandle.current().pid() + "-" + System.currentTimeMillis();
        res.label = target.equals("relay") ? "outbox-relay"
                : ("Debezium " + System.getProperty("bench.debezium.version", "")).trim() + " embedded";
        System.out.printf("%n== %s ==%n", res.label);

        try (Connection su = superuser("postgres")) {
            if (!target.equals("relay") && !"logical".equals(scalar(su, "SHOW wal_level"))) {
                throw new IllegalStateException("Debezium needs wal_level=logical on this PostgreSQL"
                        + " (scripts/bench debezium sets it for its own stack)");
            }
            exec(su, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
            exec(su, "CREATE DATABASE " + db + " OWNER order_service");
            exec(su, "REVOKE ALL ON DATABASE " + db + " FROM PUBLIC");
            exec(su, "GRANT CONNECT ON DATABASE " + db + " TO outbox_relay");
        }
        try (Connection c = owner(db)) {
            exec(c, DDL);
            c.commit();
        }
        Properties ap = new Properties();
        ap.setProperty("bootstrap.servers", stackEnv("KAFKA_BOOTSTRAP_SERVERS"));
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(60, TimeUnit.SECONDS);
        }

        try (KafkaConsumer<byte[], byte[]> offsets = new KafkaConsumer<>(kafkaProps())) {
            long base;
            long seq = 2000000000L;
            /* 0. warm-up */
            System.out.println("bench: warming up...");
            Path log = out.resolve(db + ".warmup.log");
            Process p = start(target, db, slot, log);
            if (!target.equals("relay")) {
                /* The slot is consistent once the task has started: rows committed from then on stream. */
                long end = System.currentTimeMillis() + 180000;
                while (!Files.readString(log, StandardCharsets.UTF_8).contains("task started")) {
                    if (!p.isAlive() || System.currentTimeMillis() > end) {
                        throw new IllegalStateException("Debezium did not start; see " + log + ":\n" + tail(log));
                    }
                    sleepMs(50);
                }
            }
            for (int probe = 0; total(offsets, topic) < 1; probe++) {
                if (probe >= 9) {
                    throw new IllegalStateException("nothing was published in 3 minutes; see " + log + ":\n"
                            + tail(log));
                }
                insertOne(db, topic, seq++, "0");
                long end = System.currentTimeMillis() + 20000;
                while (total(offsets, topic) < 1 && System.currentTimeMillis() < end && p.isAlive()) {
                    sleepMs(5);
                }
            }
            sleepMs(1000);
            base = total(offsets, topic);
            fill(db, topic, 1000000000L, rows, "warm-up".getBytes(StandardCharsets.UTF_8));
            waitTotal(offsets, topic, base + rows, 600000, p, log);
            stop(p);
            base = total(offsets, topic);

            /* 1. drain */
            System.out.printf("bench: writing %d outbox rows...%n", rows);
            fill(db, topic, 0, rows, PAYLOAD.getBytes(StandardCharsets.UTF_8));
            log = out.resolve(db + ".drain.log");
            long t0 = System.nanoTime();
            p = start(target, db, slot, log);
            long tFirst = 0;
            long tDone;
            long deadline = t0 + TimeUnit.SECONDS.toNanos(600);
            while (true) {
                long n = total(offsets, topic);
                long now = System.nanoTime();
                if (tFirst == 0 && n > base) {
                    tFirst = now;
                }
                if (n >= base + rows) {
                    tDone = now;
                    break;
                }
                if (!p.isAlive() || now > deadline) {
                    throw new IllegalStateException("the drain did not finish; see " + log + ":\n" + tail(log));
                }
                sleepMs(5);
            }
            res.drainRssKb = vmHwmKb(p);
            res.drainSeconds = (tDone - tFirst) / 1e9;
            res.drainRate = rows / res.drainSeconds;
            res.startToFirst = (tFirst - t0) / 1e9;
            sleepMs(1000);
            res.resent = total(offsets, topic) - (base + rows);
            stop(p);
            base = total(offsets, topic);
            System.out.printf("  drain: %d rows in %.2f s after the first was acknowledged: %.0f events/s"
                    + " (start-up to the first: %.1f s; peak RSS %d MiB)%n", rows, res.drainSeconds, res.drainRate,
                    res.startToFirst, res.drainRssKb / 1024);

            /* 2. latency at a steady rate, one process for both passes: the first (5 s, right
             * after the start) shows what a restart costs, the second (S s) is the steady state. */
            try (KafkaConsumer<byte[], byte[]> reader = new KafkaConsumer<>(kafkaProps())) {
                reader.assign(partitions(topic));
                reader.seekToEnd(partitions(topic));
                for (TopicPartition tp : partitions(topic)) {
                    reader.position(tp);
                }
                log = out.resolve(db + ".latency.log");
                p = start(target, db, slot, log);
                insertOne(db, topic, seq++, "0"); /* its producer's start is not measured */
                waitTotal(offsets, topic, base + 1, 180000, p, log);
                for (int pass = 0; pass < 2; pass++) {
                    double secs = pass == 1 ? seconds : 5;
                    long[] lat = new long[(int) (rate * secs * 2) + 1000];
                    long[] at = new long[lat.length]; /* when each arrived, for the CSV */
                    int nlat = 0;
                    long allConsumed = 0;
                    Writer[] w = new Writer[2];
                    for (int i = 0; i < 2; i++) {
                        w[i] = new Writer(db, topic, pass * 2 + i + 1, rate / 2, secs);
                        w[i].start();
                    }
                    long passStart = nowMicros();
                    long end = System.currentTimeMillis() + (long) ((secs + 10) * 1000);
                    while (System.currentTimeMillis() < end) {
                        var batch = reader.poll(Duration.ofMillis(100));
                        long now = nowMicros();
                        for (ConsumerRecord<byte[], byte[]> m : batch) {
                            if (m.value() != null && m.value().length < 32 && nlat < lat.length) {
                                long t = Long.parseLong(new String(m.value(), StandardCharsets.UTF_8));
                                if (t > 0) {
                                    at[nlat] = now - passStart;
                                    lat[nlat++] = now - t;
                                }
                            }
                        }
                        if (!w[0].isAlive() && !w[1].isAlive() && nlat >= w[0].written + w[1].written) {
                            allConsumed = now;
                            break;
                        }
                    }
                    for (Writer x : w) {
                        x.join();
                        if (x.error != null) {
                            throw x.error;
                        }
                    }
                    if (nlat < w[0].written + w[1].written) {
                        System.out.printf("  only %d of %d rows arrived in time%n", nlat, w[0].written + w[1].written);
                    }
                    StringBuilder csv = new StringBuilder("arrived_ms,latency_ms\n");
                    for (int i = 0; i < nlat; i++) {
                        csv.append(String.format("%.1f,%.2f%n", at[i] / 1000.0, lat[i] / 1000.0));
                    }
                    Files.writeString(out.resolve(db + ".pass" + pass + ".csv"), csv);
                    double[] pc = percentiles(lat, nlat);
                    System.out.printf("  latency at %d events/s for %.0f s (%d events)%s, through a consumer:"
                            + " commit -> consumed p50 %.2f ms, p99 %.2f ms, max %.2f ms%n", rate, secs, nlat,
                            pass == 0 ? " just after the start" : "", pc[0], pc[1], pc[2]);
                    if (pass == 0) {
                        res.cold = pc;
                    } else {
                        res.events = nlat;
                        res.p50 = pc[0];
                        res.p99 = pc[1];
                        res.max = pc[2];
                        res.catchUpMs = allConsumed > 0
                                ? (allConsumed - Math.max(w[0].lastCommit, w[1].lastCommit)) / 1000.0 : -1;
                    }
                }
                res.latencyRssKb = vmHwmKb(p);
                stop(p);
                base = total(offsets, topic);
            }
            res.inside = inside(log);
            System.out.printf("  inside the process (both passes): %s ms; peak RSS %d MiB%n", res.inside,
                    res.latencyRssKb / 1024);
        } finally {
            try (Connection su = superuser("postgres")) {
                if (!target.equals("relay")) {
                    exec(su, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                            + " WHERE slot_name = '" + slot + "' AND NOT active");
                }
                exec(su, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
            }
        }
        System.out.printf("{\"bench\":\"%s\",\"drain_events_per_s\":%.0f,\"rate\":%d,\"p50_ms\":%.2f,"
                + "\"p99_ms\":%.2f,\"max_ms\":%.2f,\"drain_rss_kb\":%d,\"latency_rss_kb\":%d}%n",
                target, res.drainRate, rate, res.p50, res.p99, res.max, res.drainRssKb, res.latencyRssKb);
        return res;
    }

    private static double[] percentiles(long[] lat, int n) {
        if (n == 0) {
            return new double[] {0, 0, 0};
        }
        long[] s = Arrays.copyOf(lat, n);
        Arrays.sort(s);
        return new double[] {s[n / 2] / 1000.0, s[(int) ((long) n * 99 / 100)] / 1000.0, s[n - 1] / 1000.0};
    }

    private static void table(List<Result> results) {
        Map<String, List<String>> rowsOut = new LinkedHashMap<>();
        for (Result r : results) {
            rowsOut.computeIfAbsent("", k -> new ArrayList<>()).add(r.label);
            rowsOut.computeIfAbsent(String.format("drain, %,d rows waiting: events/s", rows), k -> new ArrayList<>())
                    .add(String.format("%,.0f (%.2f s)", r.drainRate, r.drainSeconds));
            rowsOut.computeIfAbsent("start-up to the first row acknowledged", k -> new ArrayList<>())
                    .add(String.format("%.1f s", r.startToFirst));
            rowsOut.computeIfAbsent(String.format("%,d rows/s, the first 5 s after a start: commit → consumed"
                    + " p50 / p99 / max", rate), k -> new ArrayList<>())
                    .add(String.format("%.2f / %.2f / %.2f ms", r.cold[0], r.cold[1], r.cold[2]));
            rowsOut.computeIfAbsent(String.format("%,d rows/s, the %.0f s after that: commit → consumed"
                    + " p50 / p99 / max", rate, seconds), k -> new ArrayList<>())
                    .add(String.format("%.2f / %.2f / %.2f ms", r.p50, r.p99, r.max));
            rowsOut.computeIfAbsent("inside the process, both passes: p50 / p99 / max", k -> new ArrayList<>())
                    .add(r.inside.isEmpty() ? "—" : r.inside + " ms");
            rowsOut.computeIfAbsent("last commit → all consumed", k -> new ArrayList<>())
                    .add(String.format("%.1f ms", r.catchUpMs));
            rowsOut.computeIfAbsent("peak RSS: drain / latency pass", k -> new ArrayList<>())
                    .add(String.format("%d / %d MiB", r.drainRssKb / 1024, r.latencyRssKb / 1024));
            rowsOut.computeIfAbsent("sent again after a clean restart", k -> new ArrayList<>())
                    .add(Long.toString(r.resent));
        }
        System.out.println();
        boolean head = true;
        for (Map.Entry<String, List<String>> e : rowsOut.entrySet()) {
            System.out.println("| " + e.getKey() + " | " + String.join(" | ", e.getValue()) + " |");
            if (head) {
                System.out.println("|---" + "|---".repeat(e.getValue().size()) + "|");
                head = false;
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String what = args.length > 0 ? args[0] : "both";
        String envFile = env("SAGA_STACK_ENV", null);
        if (envFile == null) {
            throw new IllegalArgumentException("SAGA_STACK_ENV (the stack's stack.env) is required");
        }
        for (String l : Files.readAllLines(Paths.get(envFile), StandardCharsets.UTF_8)) {
            int eq = l.indexOf('=');
            if (l.startsWith("#") || eq < 0) {
                continue;
            }
            stack.put(l.substring(0, eq).replaceFirst("^export ", ""),
                    l.substring(eq + 1).replaceAll("^'(.*)'$", "$1"));
        }
        rows = Integer.parseInt(env("BENCH_ROWS", "50000"));
        rate = Integer.parseInt(env("BENCH_RATE", "1000"));
        seconds = Double.parseDouble(env("BENCH_SECONDS", "10"));
        out = Paths.get(env("BENCH_OUT", System.getProperty("java.io.tmpdir")));
        Files.createDirectories(out);

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (Process p : CHILDREN) {
                if (p.isAlive()) {
                    p.destroyForcibly();
                }
            }
        }));
        List<Result> results = new ArrayList<>();
        List<String> order = what.equals("both") ? List.of("relay", "debezium") : Arrays.asList(args);
        for (String target : order) {
            if (!target.equals("relay") && !target.equals("debezium")) {
                throw new IllegalArgumentException("usage: Bench [both|relay|debezium ...] (in the order to run)");
            }
            results.add(run(target));
        }
        table(results);
    }
}
