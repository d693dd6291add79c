package tunnel

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// The data path's reads and writes go to non-blocking sockets through
// syscall.RawConn with raw system calls. A non-blocking call never sleeps
// in the kernel, so there is nothing for the scheduler to hand off; the
// ordinary path (entersyscall/exitsyscall) would instead wake the runtime's
// monitor thread and let it take the P away whenever a large loopback write
// runs past 20 µs, and those thread switches were a fifth of the tunnel's
// CPU in profiles. Waiting for readiness still goes through the poller.

// rawRead is one read(2) into p: (0, nil) means end of file, EAGAIN comes
// back as syscall.EAGAIN.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// rawWriteAll writes all of p to the socket behind rc, waiting in the
// poller (and so honouring write deadlines) when its buffer is full.
func rawWriteAll(rc syscall.RawConn, p []byte) (int, error) {
	written := 0
	var opErr syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			switch e {
			case 0:
				written += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				opErr = e
				return true
			}
		}
		return true
	})
	if err != nil {
		return written, err
	}
	if opErr != 0 {
		return written, os.NewSyscallError("write", opErr)
	}
	return written, nil
}

// readResult turns a rawRead outcome into Go's conventions.
func readResult(n int, e syscall.Errno) (int, error) {
	if e != 0 {
		return 0, os.NewSyscallError("read", e)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
