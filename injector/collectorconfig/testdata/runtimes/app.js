// The Node.js app of the multiline tests: numbered lines on stdout and
// stderr, and between them real errors printed by console.error(): with a
// cause ("[cause]: ...", "}"), and with properties ("code: ..."). It ends
// with an uncaught exception (the location and source line first), thrown
// from an indented line, or with "top" from a line that is not indented.
//
//   node app.js EXCEPTIONS LINES RATE [top]
"use strict";
const [n, lines, rate] = process.argv.slice(2, 5).map(Number);
const top = process.argv[5] === "top";
const step = 2000 / rate; // ms; each stream gets half of the rate

function parseQuantity(text) {
  const q = Number.parseInt(text, 10);
  if (Number.isNaN(q)) throw new RangeError(`not a quantity: ${text}`);
  return q;
}

function place(i) {
  try {
    parseQuantity(`boom-${i}`);
  } catch (e) {
    const err = new Error(`order boom-${i} failed`, { cause: e });
    if (i % 3 === 2) err.code = "E_ORDER";
    throw err;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const start = Date.now();
  let outSeq = 0, errSeq = 0, tick = 0;
  // One loop paces both streams: stdout on every tick, stderr on every
  // tick too, an error after each LINES stderr lines.
  for (let i = 0; i <= n; i++) {
    for (let j = 0; j < lines; j++) {
      process.stdout.write(`seq=${String(outSeq++).padStart(6, "0")} stream=stdout lang=nodejs\n`);
      process.stderr.write(`seq=${String(errSeq++).padStart(6, "0")} stream=stderr lang=nodejs\n`);
      tick++;
      const wait = start + tick * step - Date.now();
      if (wait > 0) await sleep(wait);
    }
    if (i === n) break;
    try {
      place(i);
    } catch (e) {
      console.error(e);
    }
  }
  if (top) last();
  place(n);
}

// Not indented, so that the report's source line is not indented either.
function last() {
throw new TypeError(`boom-${n}: the last report`);
}

main();
