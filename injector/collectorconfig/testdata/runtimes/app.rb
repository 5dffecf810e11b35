# The Ruby app of the multiline tests: numbered lines on stdout (from a
# thread) and stderr, and between them real reports printed by
# Exception#full_message (what Ruby prints for an uncaught exception). It
# ends with an uncaught exception. Causes are left out: Ruby prints a cause
# as a report of its own, with a first line of the same shape.
#
#   ruby app.rb EXCEPTIONS LINES RATE
n, lines, rate = ARGV.map(&:to_i)
step = 2.0 / rate # each stream gets half of the rate
$stdout.sync = true
$stderr.sync = true

def pace(nxt, step)
  nxt += step
  wait = nxt - Process.clock_gettime(Process::CLOCK_MONOTONIC)
  sleep(wait) if wait > 0
  nxt
end

class OrderError < StandardError; end

def parse_quantity(text) = Integer(text)

def place(i)
  raise OrderError, "order boom-#{i} failed" if i.odd?
  parse_quantity("boom-#{i}")
end

done = false
out = Thread.new do
  nxt = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  i = 0
  until done
    $stdout.puts format("seq=%06d stream=stdout lang=ruby", i)
    i += 1
    nxt = pace(nxt, step)
  end
end

seq = 0
nxt = Process.clock_gettime(Process::CLOCK_MONOTONIC)
(0..n).each do |i|
  lines.times do
    $stderr.puts format("seq=%06d stream=stderr lang=ruby", seq)
    seq += 1
    nxt = pace(nxt, step)
  end
  break if i == n
  begin
    place(i)
  rescue => e
    $stderr.puts e.full_message(highlight: false)
  end
end
done = true
out.join
place(n + 1)
