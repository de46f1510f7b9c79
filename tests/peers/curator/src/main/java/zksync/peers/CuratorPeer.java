package zksync.peers;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.data.Stat;

/**
 * A Curator client driven line by line from zksync's interop tests (see ../README.md for the
 * protocol): InterProcessReadWriteLock ({@code curator-rw}) or InterProcessMutex
 * ({@code curator-mutex}), through Curator's ordinary API.
 */
public final class CuratorPeer {
    private static final PrintStream PROTOCOL =
            new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

    private final CuratorFramework client;
    private final String path;
    private final InterProcessLock writeLock;
    private final InterProcessLock readLock; // null: the recipe has none
    private InterProcessLock held;

    private CuratorPeer(CuratorFramework client, String path, String recipe) {
        this.client = client;
        this.path = path;
        switch (recipe) {
            case "curator-rw": {
                InterProcessReadWriteLock rw = new InterProcessReadWriteLock(client, path);
                writeLock = rw.writeLock();
                readLock = rw.readLock();
                break;
            }
            case "curator-mutex":
                writeLock = new InterProcessMutex(client, path);
                readLock = null;
                break;
            default:
                throw new IllegalArgumentException("unknown recipe " + recipe);
        }
    }

    public static void main(String[] args) throws Exception {
        System.setOut(System.err); // anything a library prints must not reach the protocol
        String servers = null, path = null, recipe = null;
        double sessionTimeout = 10;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--servers": servers = args[i + 1]; break;
                case "--path": path = args[i + 1]; break;
                case "--recipe": recipe = args[i + 1]; break;
                case "--session-timeout": sessionTimeout = Double.parseDouble(args[i + 1]); break;
                default: usage("unknown option " + args[i]);
            }
        }
        if (servers == null || path == null || !path.startsWith("/") || recipe == null) {
            usage("missing option");
        }
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(servers)
                .sessionTimeoutMs((int) Math.round(sessionTimeout * 1000))
                .connectionTimeoutMs(Math.min(15_000, (int) Math.round(sessionTimeout * 1000)))
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 2_000))
                .build();
        client.getConnectionStateListenable().addListener(
                (c, state) -> System.err.println("curator-peer: connection " + state));
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            System.err.println("curator-peer: no connection within 30 s");
            System.exit(3);
        }
        CuratorPeer peer = new CuratorPeer(client, path, recipe);
        PROTOCOL.println("ready");

        // Curator's locks belong to the thread that took them: one thread runs every command,
        // in the order sent, and the reader below keeps reading meanwhile.
        ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "commands");
            t.setDaemon(true);
            return t;
        });
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String command = line.trim();
            if (command.equals("quit")) {
                break;
            }
            if (!command.isEmpty()) {
                worker.execute(() -> PROTOCOL.println(peer.answer(command)));
            }
        }
        client.close(); // ends the session: whatever this peer held is released
        System.exit(0);
    }

    private static void usage(String problem) {
        System.err.println("curator-peer: " + problem + "; usage: CuratorPeer --servers host:port,..."
                + " --path /absolute/path --recipe curator-rw|curator-mutex [--session-timeout S]");
        System.exit(2);
    }

    private String answer(String command) {
        try {
            String result = run(command);
            return result.isEmpty() ? "ok" : "ok " + result;
        } catch (Exception e) {
            return "err " + String.join(" ", String.valueOf(e).trim().split("\\s+"));
        }
    }

    private String run(String command) throws Exception {
        switch (command) {
            case "lock":
                return acquire(writeLock);
            case "rlock":
                if (readLock == null) {
                    throw new UnsupportedOperationException("InterProcessMutex has no read lock");
                }
                return acquire(readLock);
            case "unlock":
                if (held == null) {
                    throw new IllegalStateException("not holding a lock");
                }
                held.release();
                held = null;
                return "";
            case "children": {
                List<String> names = new ArrayList<>(client.getChildren().forPath(path));
                Collections.sort(names);
                return String.join(",", names);
            }
            default:
                throw new IllegalArgumentException("unknown command " + command);
        }
    }

    private String acquire(InterProcessLock lock) throws Exception {
        lock.acquire();
        held = lock;
        return ownNode();
    }

    /** The child of the lock path that this session owns: Curator keeps its node's name to itself. */
    private String ownNode() throws Exception {
        long session = client.getZookeeperClient().getZooKeeper().getSessionId();
        for (String name : client.getChildren().forPath(path)) {
            Stat stat = client.checkExists().forPath(path + "/" + name);
            if (stat != null && stat.getEphemeralOwner() == session) {
                return name;
            }
        }
        throw new IllegalStateException("acquired, but no child of the lock path belongs to this session");
    }
}
