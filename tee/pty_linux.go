package tee

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// tiocgptpeer opens the peer (slave) of a pseudo-terminal master without a
// path look-up (Linux 4.13); syscall does not name it.
const tiocgptpeer = 0x5441

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

func getTermios(fd int) (*syscall.Termios, error) {
	var t syscall.Termios
	if err := ioctl(fd, syscall.TCGETS, unsafe.Pointer(&t)); err != nil {
		return nil, err
	}
	return &t, nil
}

func setTermios(fd int, t *syscall.Termios) error {
	return ioctl(fd, syscall.TCSETS, unsafe.Pointer(t))
}

// isTerminal says whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := getTermios(fd)
	return err == nil
}

type winsize struct{ row, col, xpixel, ypixel uint16 }

// copyWindowSize gives the terminal to the size of from; errors are ignored
// (a terminal without a size is fine).
func copyWindowSize(from, to int) {
	var ws winsize
	if ioctl(from, syscall.TIOCGWINSZ, unsafe.Pointer(&ws)) == nil && ws.row > 0 && ws.col > 0 {
		_ = ioctl(to, syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
	}
}

// openPTY opens a pseudo-terminal pair. The master is non-blocking (it is read
// in the event loop); the slave becomes the command's terminal. Output
// processing of "\n" into "\r\n" is turned off on the slave, so that the log
// file gets the command's bytes; the outer terminal still does it for the
// screen.
func openPTY() (master int, slave *os.File, err error) {
	master, err = syscall.Open("/dev/ptmx", syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer func() {
		if err != nil {
			_ = syscall.Close(master)
		}
	}()
	var unlock int32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		return -1, nil, fmt.Errorf("unlock the pseudo-terminal: %w", err)
	}
	sfd, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(master), tiocgptpeer, uintptr(syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC))
	if errno != 0 {
		// Older kernels: open it by name.
		var n uint32
		if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
			return -1, nil, fmt.Errorf("name of the pseudo-terminal: %w", err)
		}
		fd, err := syscall.Open("/dev/pts/"+strconv.Itoa(int(n)), syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return -1, nil, fmt.Errorf("open the pseudo-terminal: %w", err)
		}
		sfd = uintptr(fd)
	}
	if t, err := getTermios(int(sfd)); err == nil {
		t.Oflag &^= syscall.ONLCR
		_ = setTermios(int(sfd), t)
	}
	if err := syscall.SetNonblock(master, true); err != nil {
		_ = syscall.Close(int(sfd))
		return -1, nil, fmt.Errorf("pseudo-terminal: %w", err)
	}
	return master, os.NewFile(sfd, "pty"), nil
}

// makeInputRaw turns off line editing, echo and signal keys on a terminal we
// read from, so that the command's own terminal does them (as `script` does),
// and returns a function that restores it. Output processing is left as it is.
func makeInputRaw(fd int) (restore func(), err error) {
	old, err := getTermios(fd)
	if err != nil {
		return func() {}, err
	}
	raw := *old
	raw.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	raw.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	raw.Cc[syscall.VMIN] = 1
	raw.Cc[syscall.VTIME] = 0
	if err := setTermios(fd, &raw); err != nil {
		return func() {}, err
	}
	return func() { _ = setTermios(fd, old) }, nil
}
