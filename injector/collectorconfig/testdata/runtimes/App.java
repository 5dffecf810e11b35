// The Java app of the multiline tests: numbered lines on stdout (from a
// thread) and stderr, and between them real stack traces printed by
// printStackTrace(): with causes ("Caused by:", "... N more") and
// suppressed exceptions. It ends with an uncaught exception with a cause.
//
//   java App.java EXCEPTIONS LINES RATE   (the source launcher, JDK 11+)
public class App {
    static long step;

    static long pace(long next) throws InterruptedException {
        next += step;
        long wait = next - System.nanoTime();
        if (wait > 0) {
            Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
        }
        return next;
    }

    static int parseQuantity(String s) {
        return Integer.parseInt(s);
    }

    static void place(int i) {
        try {
            parseQuantity("boom-" + i);
        } catch (NumberFormatException e) {
            IllegalStateException outer = new IllegalStateException("order boom-" + i + " failed", e);
            if (i % 3 == 2) {
                outer.addSuppressed(new java.io.IOException("close boom-" + i));
            }
            throw outer;
        }
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]), lines = Integer.parseInt(args[1]), rate = Integer.parseInt(args[2]);
        step = 2_000_000_000L / rate; // each stream gets half of the rate
        final boolean[] done = {false};
        Thread out = new Thread(() -> {
            try {
                long next = System.nanoTime();
                for (int i = 0; ; i++) {
                    synchronized (done) {
                        if (done[0]) return;
                    }
                    System.out.printf("seq=%06d stream=stdout lang=java%n", i);
                    System.out.flush();
                    next = pace(next);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        out.start();
        int seq = 0;
        long next = System.nanoTime();
        for (int i = 0; i <= n; i++) {
            for (int j = 0; j < lines; j++) {
                System.err.printf("seq=%06d stream=stderr lang=java%n", seq++);
                System.err.flush();
                next = pace(next);
            }
            if (i == n) break;
            try {
                place(i);
            } catch (RuntimeException e) {
                e.printStackTrace();
            }
        }
        synchronized (done) {
            done[0] = true;
        }
        out.join();
        place(n);
    }
}
