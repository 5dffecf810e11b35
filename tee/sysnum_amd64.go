package tee

// sysPwritev2 is pwritev2's number, which syscall does not name.
const sysPwritev2 = 328
