package zksync.peers;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

import org.apache.curator.drivers.AdvancedTracerDriver;
import org.apache.curator.drivers.EventTrace;
import org.apache.curator.drivers.OperationTrace;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.locks.InterProcessLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.retry.ExponentialBackoffRetry;

/**
 * Apache Curator's recipes timed for zksync's benchmark suite (benchmarks/suite.py), every
 * client with its own session, all in this one JVM.
 *
 * <pre>
 * CuratorBench --servers host:port,... --path /abs --scenario contended|rw|uncontended|double
 *              [--clients N] [--readers R] [--writers W] [--seconds T] [--cycles C] [--members N]
 *              [--session-timeout S]
 * </pre>
 *
 * The program connects every client and warms up, prints {@code ready} on stdout and waits for
 * {@code go} on stdin; then it runs the timed part and prints one JSON line with its results.
 * {@code uncontended} answers every {@code go [cycles]} with one JSON line (the caller can
 * alternate its blocks with others'). {@code close}, or the end of stdin, closes the sessions
 * and exits. Logs go to stderr.
 *
 * <p>Requests are counted by Curator's tracer (an {@link AdvancedTracerDriver} on every client):
 * one trace per ZooKeeper operation that completed; a foreground operation that failed (say,
 * a getData of a node already deleted) is not traced, so the count is a lower bound. The
 * servers' count ({@code mntr}) is taken by the caller around the timed part.
 */
public final class CuratorBench {
    private static final PrintStream OUT =
            new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    private static final BufferedReader IN =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    private static final long WAIT_S = 30; // the longest one acquire may wait in the lock scenarios

    private String servers;
    private String path;
    private String scenario;
    private int clients = 8;
    private int readers = 3;
    private int writers = 1;
    private double seconds = 2;
    private int cycles = 50;
    private int members = 10;
    private double sessionTimeout = 30;

    private final Tracer tracer = new Tracer();
    private final List<CuratorFramework> made = Collections.synchronizedList(new ArrayList<>());
    private final ThreadFactory curatorThreads = daemonThreads("curator");

    public static void main(String[] args) throws Exception {
        System.setOut(System.err); // anything a library prints must not reach the protocol
        CuratorBench bench = new CuratorBench();
        try {
            bench.parse(args);
            bench.run();
        } catch (Exception e) {
            Map<String, Object> failed = new LinkedHashMap<>();
            failed.put("error", String.valueOf(e));
            OUT.println(json(failed));
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    private void parse(String[] args) {
        for (int i = 0; i + 1 < args.length; i += 2) {
            String value = args[i + 1];
            switch (args[i]) {
                case "--servers": servers = value; break;
                case "--path": path = value; break;
                case "--scenario": scenario = value; break;
                case "--clients": clients = Integer.parseInt(value); break;
                case "--readers": readers = Integer.parseInt(value); break;
                case "--writers": writers = Integer.parseInt(value); break;
                case "--seconds": seconds = Double.parseDouble(value); break;
                case "--cycles": cycles = Integer.parseInt(value); break;
                case "--members": members = Integer.parseInt(value); break;
                case "--session-timeout": sessionTimeout = Double.parseDouble(value); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (args.length % 2 != 0 || servers == null || path == null || !path.startsWith("/") || scenario == null) {
            throw new IllegalArgumentException("usage: CuratorBench --servers host:port,... --path /abs"
                    + " --scenario contended|rw|uncontended|double [--clients N] [--readers R] [--writers W]"
                    + " [--seconds T] [--cycles C] [--members N] [--session-timeout S]");
        }
    }

    private void run() throws Exception {
        switch (scenario) {
            case "contended":
                locks(clients, 0);
                break;
            case "rw":
                locks(writers, readers);
                break;
            case "uncontended":
                uncontended();
                break;
            case "double":
                doubleBarrier();
                break;
            default:
                throw new IllegalArgumentException("unknown scenario " + scenario);
        }
    }

    // ---- scenarios ----------------------------------------------------------------------

    /** {@code writing} clients on the write lock and {@code reading} on the read lock (none:
     * an InterProcessMutex each), every client acquiring and releasing for {@code seconds}. */
    private void locks(int writing, int reading) throws Exception {
        List<CuratorFramework> sessions = connect(writing + reading);
        List<InterProcessLock> locks = new ArrayList<>();
        List<String> modes = new ArrayList<>();
        for (int i = 0; i < sessions.size(); i++) {
            boolean write = i < writing;
            if (reading == 0) {
                locks.add(new InterProcessMutex(sessions.get(i), path));
            } else {
                InterProcessReadWriteLock rw = new InterProcessReadWriteLock(sessions.get(i), path);
                locks.add(write ? rw.writeLock() : rw.readLock());
            }
            modes.add(write ? "write" : "read");
        }
        long[] done = new long[locks.size()];
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch warm = new CountDownLatch(locks.size());
        CountDownLatch start = new CountDownLatch(1);
        long[] end = new long[1];
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < locks.size(); i++) {
            int k = i;
            InterProcessLock lock = locks.get(k);
            threads.add(new Thread(() -> {
                try {
                    for (int w = 0; w < 5; w++) { // warm-up, each client a few times, contended
                        cycle(lock);
                    }
                    warm.countDown();
                    start.await();
                    long count = 0;
                    while (System.nanoTime() < end[0]) {
                        cycle(lock);
                        count++;
                    }
                    done[k] = count;
                } catch (Exception e) {
                    errors.add(String.valueOf(e));
                    warm.countDown();
                }
            }, "locker-" + k));
        }
        for (Thread t : threads) {
            t.setDaemon(true);
            t.start();
        }
        warm.await();
        ready();
        Window window = new Window();
        end[0] = System.nanoTime() + (long) (seconds * 1e9);
        start.countDown();
        for (Thread t : threads) {
            t.join((long) ((seconds + 2 * WAIT_S) * 1000));
        }
        double elapsed = window.elapsed();
        Map<String, Object> result = window.stop();
        long acquisitions = 0;
        Map<String, Long> byMode = new TreeMap<>();
        for (int i = 0; i < done.length; i++) {
            acquisitions += done[i];
            byMode.merge(modes.get(i), done[i], Long::sum);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("scenario", scenario);
        out.put("clients", locks.size());
        out.put("acquisitions", acquisitions);
        out.put("acquisitions_by_mode", byMode);
        out.put("elapsed_s", elapsed);
        out.putAll(result);
        out.put("errors", new ArrayList<>(errors.subList(0, Math.min(5, errors.size()))));
        out.put("error_count", errors.size());
        OUT.println(json(out));
        closeWhenTold();
    }

    private static void cycle(InterProcessLock lock) throws Exception {
        if (!lock.acquire(WAIT_S, TimeUnit.SECONDS)) {
            throw new IllegalStateException("not acquired within " + WAIT_S + " s");
        }
        lock.release();
    }

    /** One client's InterProcessMutex: each {@code go [cycles]} times that many acquire + release. */
    private void uncontended() throws Exception {
        InterProcessMutex mutex = new InterProcessMutex(connect(1).get(0), path);
        for (int w = 0; w < 50; w++) {
            cycle(mutex);
        }
        String line = ready();
        for (; line != null; line = IN.readLine()) {
            String[] words = line.trim().split("\\s+");
            if (words[0].equals("close")) {
                break;
            }
            if (!words[0].equals("go")) {
                continue;
            }
            int count = words.length > 1 ? Integer.parseInt(words[1]) : cycles;
            Window window = new Window();
            double[] samples = new double[count];
            for (int i = 0; i < count; i++) {
                long t0 = System.nanoTime();
                cycle(mutex);
                samples[i] = (System.nanoTime() - t0) / 1e6;
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("scenario", scenario);
            out.put("cycles", count);
            out.put("elapsed_s", window.elapsed());
            out.putAll(window.stop());
            double[] sorted = samples.clone();
            java.util.Arrays.sort(sorted);
            double sum = 0;
            for (double s : samples) {
                sum += s;
            }
            out.put("median_ms", count == 0 ? null : (sorted[(count - 1) / 2] + sorted[count / 2]) / 2);
            out.put("mean_ms", count == 0 ? null : sum / count);
            out.put("p99_ms", count == 0 ? null : sorted[(int) (0.99 * (count - 1))]);
            List<Double> listed = new ArrayList<>();
            for (double s : samples) {
                listed.add(s);
            }
            out.put("samples_ms", listed);
            OUT.println(json(out));
        }
        closeAll();
    }

    /** {@code members} sessions, a DistributedDoubleBarrier each, entering and leaving together. */
    private void doubleBarrier() throws Exception {
        List<CuratorFramework> sessions = connect(members);
        int n = sessions.size();
        CountDownLatch start = new CountDownLatch(1);
        double[] enterS = new double[n];
        double[] leaveS = new double[n];
        double[] finishedAt = new double[n]; // epoch seconds; 0: did not finish
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger finished = new AtomicInteger();
        long timeoutMs = (long) (seconds * 1000);
        List<Thread> threads = new ArrayList<>();
        ThreadFactory memberThreads = daemonThreads("member");
        for (int i = 0; i < n; i++) {
            int k = i;
            DistributedDoubleBarrier barrier = new DistributedDoubleBarrier(sessions.get(k), path, n);
            threads.add(memberThreads.newThread(() -> {
                try {
                    start.await();
                    long t0 = System.nanoTime();
                    if (!barrier.enter(timeoutMs, TimeUnit.MILLISECONDS)) {
                        throw new IllegalStateException("enter timed out");
                    }
                    long t1 = System.nanoTime();
                    long left = Math.max(100, timeoutMs - (t1 - t0) / 1_000_000);
                    if (!barrier.leave(left, TimeUnit.MILLISECONDS)) {
                        throw new IllegalStateException("leave timed out");
                    }
                    long t2 = System.nanoTime();
                    enterS[k] = (t1 - t0) / 1e9;
                    leaveS[k] = (t2 - t1) / 1e9;
                    finishedAt[k] = epochSeconds();
                    finished.incrementAndGet();
                } catch (Exception e) {
                    errors.add(String.valueOf(e));
                }
            }));
        }
        for (Thread t : threads) {
            t.start();
        }
        ready();
        Window window = new Window();
        start.countDown();
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L + 5_000_000_000L;
        for (Thread t : threads) {
            t.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
        }
        double last = 0;
        List<Double> enters = new ArrayList<>();
        List<Double> leaves = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (finishedAt[i] > 0) {
                last = Math.max(last, finishedAt[i]);
                enters.add(enterS[i]);
                leaves.add(leaveS[i]);
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("scenario", scenario);
        out.put("count", n);
        out.put("finished", finished.get());
        out.put("complete", finished.get() == n);
        out.put("last_finish", last > 0 ? last : null);
        out.put("wall_s_from_go", last > 0 ? last - window.startEpoch : null);
        out.putAll(window.stop());
        Collections.sort(enters);
        Collections.sort(leaves);
        out.put("enter_s_median", enters.isEmpty() ? null : enters.get(enters.size() / 2));
        out.put("enter_s_max", enters.isEmpty() ? null : enters.get(enters.size() - 1));
        out.put("leave_s_median", leaves.isEmpty() ? null : leaves.get(leaves.size() / 2));
        out.put("leave_s_max", leaves.isEmpty() ? null : leaves.get(leaves.size() - 1));
        out.put("errors", new ArrayList<>(errors.subList(0, Math.min(5, errors.size()))));
        out.put("error_count", errors.size());
        OUT.println(json(out));
        if (finished.get() == n) {
            closeWhenTold();
        } else {
            waitForClose(); // members still inside the recipe: leave without closing their sessions
        }
    }

    // ---- sessions, protocol, measuring -------------------------------------------------

    private CuratorFramework newClient() {
        int sessionMs = (int) Math.round(sessionTimeout * 1000);
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(servers)
                .sessionTimeoutMs(sessionMs)
                .connectionTimeoutMs(Math.min(15_000, sessionMs))
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 2_000))
                .threadFactory(curatorThreads)
                .build();
        client.getZookeeperClient().setTracerDriver(tracer);
        return client;
    }

    /** {@code count} started and connected clients, up to 16 connecting at a time. */
    private List<CuratorFramework> connect(int count) throws Exception {
        long started = System.nanoTime();
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, Math.min(16, count)), daemonThreads("connect"));
        List<Future<CuratorFramework>> pending = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            pending.add(pool.submit(() -> {
                CuratorFramework client = newClient();
                made.add(client);
                client.start();
                if (!client.blockUntilConnected(120, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("no connection within 120 s");
                }
                return client;
            }));
        }
        List<CuratorFramework> out = new ArrayList<>();
        for (Future<CuratorFramework> f : pending) {
            out.add(f.get());
        }
        pool.shutdown();
        System.err.printf("curator-bench: %d sessions connected in %.1f s, %d threads%n", count,
                (System.nanoTime() - started) / 1e9, ManagementFactory.getThreadMXBean().getThreadCount());
        return out;
    }

    /** Prints {@code ready}, then waits for {@code go} (or {@code go <count>}) and returns it. */
    private static String ready() throws Exception {
        OUT.println("ready");
        String line;
        while ((line = IN.readLine()) != null) {
            if (line.trim().equals("go") || line.trim().startsWith("go ")) {
                return line.trim();
            }
            if (line.trim().equals("close")) {
                break;
            }
        }
        throw new IllegalStateException("no go");
    }

    private static void waitForClose() throws Exception {
        String line;
        while ((line = IN.readLine()) != null && !line.trim().equals("close")) {
            // nothing else is expected once the result is out
        }
    }

    private void closeWhenTold() throws Exception {
        waitForClose();
        closeAll();
    }

    private void closeAll() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(16, daemonThreads("close"));
        for (CuratorFramework client : made) {
            pool.execute(client::close);
        }
        pool.shutdown();
        pool.awaitTermination(120, TimeUnit.SECONDS);
    }

    private static ThreadFactory daemonThreads(String name) {
        AtomicInteger counter = new AtomicInteger();
        return r -> {
            Thread t = new Thread(null, r, name + "-" + counter.incrementAndGet(), 256 * 1024);
            t.setDaemon(true);
            return t;
        };
    }

    private static double epochSeconds() {
        Instant now = Instant.now();
        return now.getEpochSecond() + now.getNano() / 1e9;
    }

    /** The timed window: this JVM's CPU (every thread's, user + system), its threads, and
     * the requests Curator traced. */
    private final class Window {
        final long startNanos = System.nanoTime();
        final double startEpoch = epochSeconds();
        final long cpu0 = processCpuNanos();
        final long[] ticks0 = procTicks();
        final int threadsBefore;
        final Map<String, Long> kinds0 = tracer.snapshot();

        Window() {
            ThreadMXBean threads = ManagementFactory.getThreadMXBean();
            threadsBefore = threads.getThreadCount();
            threads.resetPeakThreadCount();
        }

        double elapsed() {
            return (System.nanoTime() - startNanos) / 1e9;
        }

        Map<String, Object> stop() {
            long cpu = processCpuNanos() - cpu0;
            long[] ticks = procTicks();
            Map<String, Long> kinds = new TreeMap<>();
            long requests = 0;
            long writes = 0;
            for (Map.Entry<String, Long> e : tracer.snapshot().entrySet()) {
                long delta = e.getValue() - kinds0.getOrDefault(e.getKey(), 0L);
                if (delta > 0) {
                    kinds.put(e.getKey(), delta);
                    requests += delta;
                    if (Tracer.WRITES.contains(e.getKey())) {
                        writes += delta;
                    }
                }
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("cpu_s", cpu / 1e9);
            // user and system apart, from /proc/self/stat (clock ticks of 10 ms)
            out.put("cpu_user_s", ticks == null || ticks0 == null ? null : (ticks[0] - ticks0[0]) / 100.0);
            out.put("cpu_system_s", ticks == null || ticks0 == null ? null : (ticks[1] - ticks0[1]) / 100.0);
            out.put("threads_before", threadsBefore);
            out.put("threads_peak", ManagementFactory.getThreadMXBean().getPeakThreadCount());
            out.put("requests", requests);
            out.put("writes", writes);
            out.put("kinds", kinds);
            return out;
        }
    }

    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    /** utime and stime of this process in clock ticks, or null when /proc cannot say. */
    private static long[] procTicks() {
        try {
            String stat = new String(Files.readAllBytes(Paths.get("/proc/self/stat")), StandardCharsets.US_ASCII);
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).trim().split("\\s+");
            return new long[] {Long.parseLong(fields[11]), Long.parseLong(fields[12])};
        } catch (Exception e) {
            return null;
        }
    }

    /** Counts every ZooKeeper operation Curator traces, by kind (Create, GetChildren, ...). */
    private static final class Tracer extends AdvancedTracerDriver {
        static final java.util.Set<String> WRITES = java.util.Set.of("Create", "Delete", "SetData", "Transaction");
        private final Map<String, LongAdder> kinds = new ConcurrentHashMap<>();

        @Override
        public void addTrace(OperationTrace trace) {
            kinds.computeIfAbsent(kind(trace.getName()), k -> new LongAdder()).increment();
        }

        @Override
        public void addEvent(EventTrace trace) {
        }

        Map<String, Long> snapshot() {
            Map<String, Long> out = new TreeMap<>();
            kinds.forEach((k, v) -> out.put(k, v.sum()));
            return out;
        }

        /** "GetChildrenBuilderImpl-Foreground" is a GetChildren, "CuratorMultiTransactionImpl-..." a Transaction. */
        static String kind(String name) {
            if (name.startsWith("CuratorMultiTransactionImpl")) {
                return "Transaction";
            }
            if (name.contains("findProtectedNode")) {
                return "GetChildren";
            }
            int end = name.indexOf("BuilderImpl");
            return end > 0 ? name.substring(0, end) : name;
        }
    }

    // ---- a little JSON ----------------------------------------------------------------

    private static String json(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            out.append(Double.isFinite(d) ? Double.toString(d) : "null");
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                write(out, String.valueOf(e.getKey()));
                out.append(':');
                write(out, e.getValue());
            }
            out.append('}');
        } else if (value instanceof List) {
            out.append('[');
            boolean first = true;
            for (Object item : (List<?>) value) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                write(out, item);
            }
            out.append(']');
        } else {
            out.append('"');
            for (char c : value.toString().toCharArray()) {
                if (c == '"' || c == '\\') {
                    out.append('\\').append(c);
                } else if (c < 0x20) {
                    out.append(String.format("\\u%04x", (int) c));
                } else {
                    out.append(c);
                }
            }
            out.append('"');
        }
    }
}
