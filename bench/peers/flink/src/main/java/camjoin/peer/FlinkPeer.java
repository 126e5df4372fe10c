/*
 * FlinkPeer - the Flink peer of camjoin's benchmark (bench/peers/flink/).
 *
 * Runs a Flink SQL script (job.sql) on Flink in local mode: a MiniCluster
 * inside this one JVM, created by the Table API when no cluster is
 * configured. Usage (run.sh does all of this):
 *
 *   java -Xmx1g -Duser.timezone=UTC -cp CLASSES:DEPS camjoin.peer.FlinkPeer job.sql
 *
 * The script is split into statements at lines ending in ';' ("--" comment
 * lines are dropped), then ${NAME} is replaced with the environment variable NAME
 * (an unset one is an error). "SET 'key' = 'value';" goes into the table
 * config; every other statement goes to TableEnvironment.executeSql, and an
 * INSERT is awaited until its job ends (a bounded Kafka source ends it).
 * The last line on stdout is one JSON object: job_s (submission of the
 * INSERT to the job's end), total_s (since the JVM started), cpu_s (this
 * JVM's user+system CPU, all threads), peak_rss_kib (VmHWM), job_id.
 * FLINK_PEER_EXPLAIN_ONLY=1: print the INSERT's plan, run nothing.
 * Exit status: 0 on success, 1 on any error (message on stderr), 2 on usage.
 */
package camjoin.peer;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.JobID;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

public final class FlinkPeer {
    private static final Pattern VAR = Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)\\}");
    private static final Pattern SET = Pattern.compile(
            "(?is)^SET\\s+'([^']+)'\\s*=\\s*'([^']*)'$");

    private FlinkPeer() {}

    static String substitute(String text) {
        Matcher m = VAR.matcher(text);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String v = System.getenv(m.group(1));
            if (v == null) {
                throw new IllegalArgumentException("job.sql uses ${" + m.group(1)
                        + "} but the environment has no " + m.group(1));
            }
            m.appendReplacement(out, Matcher.quoteReplacement(v));
        }
        m.appendTail(out);
        return out.toString();
    }

    static List<String> statements(String text) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (String line : text.split("\n", -1)) {
            String t = line.strip();
            if (t.isEmpty() || t.startsWith("--")) {
                continue;
            }
            cur.append(line).append('\n');
            if (t.endsWith(";")) {
                String s = cur.toString().strip();
                out.add(s.substring(0, s.length() - 1).strip());
                cur.setLength(0);
            }
        }
        if (!cur.toString().isBlank()) {
            throw new IllegalArgumentException("job.sql: the last statement has no ';'");
        }
        return out;
    }

    static long peakRssKib() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith("VmHWM:")) {
                    return Long.parseLong(l.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            // not Linux: no figure
        }
        return -1;
    }

    static double cpuSeconds() {
        var os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean sun) {
            return sun.getProcessCpuTime() / 1e9;
        }
        return -1;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: FlinkPeer JOB.sql");
            System.exit(2);
        }
        long jvmStart = ManagementFactory.getRuntimeMXBean().getStartTime();
        List<String> stmts;
        try {
            stmts = new ArrayList<>();
            for (String st : statements(Files.readString(Path.of(args[0]), StandardCharsets.UTF_8))) {
                stmts.add(substitute(st));
            }
        } catch (Exception e) {
            System.err.println("FlinkPeer: " + e.getMessage());
            System.exit(1);
            return;
        }
        TableEnvironment tenv = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        double jobSeconds = -1;
        String jobId = "";
        try {
            for (String s : stmts) {
                Matcher set = SET.matcher(s);
                if (set.matches()) {
                    tenv.getConfig().getConfiguration().setString(set.group(1), set.group(2));
                    System.err.println("FlinkPeer: SET " + set.group(1) + " = " + set.group(2));
                    continue;
                }
                String head = s.split("\\s+", 3).length > 1
                        ? (s.split("\\s+", 3)[0] + " " + s.split("\\s+", 3)[1]) : s;
                boolean insert = s.regionMatches(true, 0, "INSERT", 0, 6);
                if (insert) {
                    System.err.println("FlinkPeer: plan:\n" + tenv.explainSql(s));
                    if ("1".equals(System.getenv("FLINK_PEER_EXPLAIN_ONLY"))) {
                        continue;
                    }
                }
                long t0 = System.nanoTime();
                TableResult r = tenv.executeSql(s);
                if (insert) {
                    Optional<JobClient> c = r.getJobClient();
                    jobId = c.map(JobClient::getJobID).map(JobID::toString).orElse("");
                    System.err.println("FlinkPeer: job " + jobId + " submitted");
                    r.await();
                    jobSeconds = (System.nanoTime() - t0) / 1e9;
                    System.err.printf("FlinkPeer: job %s finished in %.3f s%n", jobId, jobSeconds);
                } else {
                    System.err.println("FlinkPeer: " + head + " ... ok");
                }
            }
        } catch (Exception e) {
            System.err.println("FlinkPeer: failed: " + e);
            Throwable c = e.getCause();
            while (c != null) {
                System.err.println("  caused by: " + c);
                c = c.getCause();
            }
            e.printStackTrace(System.err);
            System.exit(1);
        }
        double total = (System.currentTimeMillis() - jvmStart) / 1e3;
        System.out.printf("{\"job_s\": %.3f, \"total_s\": %.3f, \"cpu_s\": %.3f, \"peak_rss_kib\": %d, \"job_id\": \"%s\"}%n",
                jobSeconds, total, cpuSeconds(), peakRssKib(), jobId);
        System.out.flush();
        // the MiniCluster's threads are not all daemons: leave at once
        System.exit(0);
    }
}
