package tunnel

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// A Mover carries the bytes of one tunnelled connection, one direction per
// method; the tunnel runs both at once and turns their ends into half-closes
// or aborts. It is the seam where a kernel-TLS mover (the record layer in
// the kernel, bytes spliced fd to fd without a user-space copy) would plug
// in on kernels that have it.
type Mover interface {
	// ToServer copies the client's plaintext from local into up until
	// local's read side ends (nil) or either side fails. add counts bytes.
	ToServer(up *Upstream, local *net.TCPConn, add func(float64)) error
	// FromServer copies the server's plaintext from up into local until up
	// ends (nil) or either side fails.
	FromServer(local *net.TCPConn, up *Upstream, add func(float64)) error
}

const (
	// bufSize is the size of every pooled buffer. Big buffers turn one
	// system call into many TLS records' worth of data, which is most of
	// what makes a tunnel cheap per byte; pooling, and holding none while a
	// connection waits, keeps them from costing anything per idle
	// connection.
	bufSize = 256 << 10
	// maxPlaintext is the largest TLS record payload.
	maxPlaintext = 16 << 10
	// recordOverhead bounds a record's header, explicit nonce and tag.
	recordOverhead = 5 + 8 + 16 + 256
	// readChunk is how much client plaintext one write to TLS takes, so
	// that its records fit one pooled buffer.
	readChunk = bufSize / (maxPlaintext + recordOverhead) * maxPlaintext
	// recordHeaderLen is the TLS record header: type, version, length.
	recordHeaderLen = 5
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// UserspaceMover copies through user space with pooled buffers. It batches:
// a client read of up to readChunk bytes becomes one write of all its TLS
// records, and server records that arrive together are decrypted into one
// buffer and written to the client at once. It holds no buffer while a
// connection waits for data.
type UserspaceMover struct{}

// ToServer implements Mover.
func (UserspaceMover) ToServer(up *Upstream, local *net.TCPConn, add func(float64)) error {
	rc, err := local.SyscallConn()
	if err != nil {
		return err
	}
	var buf *[]byte
	defer func() {
		if buf != nil {
			putBuf(buf)
		}
	}()
	for {
		n, rerr := readIdleFree(rc, &buf, readChunk)
		if n > 0 {
			up.raw.startBatch()
			_, werr := up.TLS.Write((*buf)[:n])
			if ferr := up.raw.endBatch(); werr == nil {
				werr = ferr
			}
			if werr != nil {
				return werr
			}
			add(float64(n))
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// FromServer implements Mover.
func (UserspaceMover) FromServer(local *net.TCPConn, up *Upstream, add func(float64)) error {
	rc, err := local.SyscallConn()
	if err != nil {
		return err
	}
	var (
		buf        *[]byte
		start, end int
		flushErr   error
	)
	flush := func() {
		if end > start && flushErr == nil {
			n, err := rawWriteAll(rc, (*buf)[start:end])
			add(float64(n))
			flushErr = err
		}
		start = end
	}
	release := func() {
		if buf != nil {
			putBuf(buf)
			buf, start, end = nil, 0, 0
		}
	}
	defer release()
	// A record split across reads makes TLS wait inside Read; what is
	// decrypted already goes to the client first.
	up.raw.setBeforeBlock(flush)
	defer up.raw.setBeforeBlock(nil)
	for {
		if up.raw.idle() {
			// Nothing is buffered anywhere: pass on what we have and wait
			// for the socket without holding a buffer.
			flush()
			release()
			if flushErr != nil {
				return flushErr
			}
			up.raw.waitReadable()
		}
		if buf == nil {
			buf = getBuf()
		}
		if len(*buf)-end < maxPlaintext+1 {
			flush()
			start, end = 0, 0
		}
		// With room for a whole record, each Read leaves nothing behind in
		// the TLS layer, so raw.idle() tells the truth.
		n, err := up.TLS.Read((*buf)[end:])
		end += n
		if flushErr != nil {
			return flushErr
		}
		if err != nil {
			flush()
			if flushErr != nil {
				return flushErr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// readIdleFree reads once from the socket behind rc into *buf, taking a
// pooled buffer only when data is there and giving it back before waiting:
// an idle connection holds none.
func readIdleFree(rc syscall.RawConn, buf **[]byte, limit int) (int, error) {
	var n int
	var e syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		if *buf == nil {
			*buf = getBuf()
		}
		n, e = rawRead(fd, (**buf)[:limit])
		if e == syscall.EAGAIN {
			putBuf(*buf)
			*buf = nil
			return false
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return readResult(n, e)
}

// rawConn sits between crypto/tls and the TCP connection. It reads the
// socket in big gulps and hands TLS at most one record at a time, so after
// every tls.Conn.Read that had room for a record, any data not yet
// decrypted is in this buffer where the mover can see it; and while a
// batch is open it collects TLS's record writes into one socket write.
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// Read side: only the goroutine inside tls.Conn.Read (or the
	// handshake) and FromServer between its Reads touch these.
	rbuf         *[]byte
	rstart, rend int
	recLeft      int   // bytes of the current record not yet given to TLS
	rerr         error // a socket error to report once the buffer is drained
	beforeBlock  func()

	// Write side: TLS writes under its own lock, but alerts and key
	// updates can come from the reading goroutine, hence wmu.
	wmu      sync.Mutex
	batching bool
	wbuf     *[]byte
	wn       int
}

func newRawConn(c *net.TCPConn) *rawConn {
	rc, err := c.SyscallConn()
	if err != nil {
		// Only a closed or non-socket conn fails here; reads will fail
		// the same way.
		rc = nil
	}
	return &rawConn{TCPConn: c, rc: rc}
}

func (r *rawConn) buffered() int { return r.rend - r.rstart }

// idle is true when no undecrypted byte is held: the next byte must come
// from the socket.
func (r *rawConn) idle() bool { return r.buffered() == 0 && r.recLeft == 0 && r.rerr == nil }

func (r *rawConn) setBeforeBlock(f func()) { r.beforeBlock = f }

// waitReadable blocks until the socket has data (or an error), taking it
// into the buffer.
func (r *rawConn) waitReadable() {
	if r.buffered() == 0 && r.rerr == nil {
		r.rerr = r.fill()
	}
}

// fill reads what the socket has into the buffer after any leftover bytes.
func (r *rawConn) fill() error {
	if r.rc == nil {
		return net.ErrClosed
	}
	var n int
	var e syscall.Errno
	blocked := false
	err := r.rc.Read(func(fd uintptr) bool {
		if r.rbuf == nil {
			r.rbuf = getBuf()
			r.rstart, r.rend = 0, 0
		}
		if r.rstart > 0 {
			r.rend = copy(*r.rbuf, (*r.rbuf)[r.rstart:r.rend])
			r.rstart = 0
		}
		n, e = rawRead(fd, (*r.rbuf)[r.rend:])
		if e == syscall.EAGAIN {
			if !blocked && r.beforeBlock != nil {
				blocked = true
				r.beforeBlock()
			}
			if r.rend == 0 {
				putBuf(r.rbuf)
				r.rbuf = nil
			}
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	n, err = readResult(n, e)
	if err != nil {
		return err
	}
	r.rend += n
	return nil
}

// Read gives TLS buffered bytes, never past the end of the current record.
func (r *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.recLeft == 0 {
		for r.buffered() < recordHeaderLen {
			if r.rerr == nil {
				r.rerr = r.fill()
			}
			if r.rerr != nil {
				if r.buffered() > 0 {
					break
				}
				return 0, r.takeErr()
			}
		}
		if r.buffered() >= recordHeaderLen {
			hdr := (*r.rbuf)[r.rstart : r.rstart+recordHeaderLen]
			r.recLeft = recordHeaderLen + int(binary.BigEndian.Uint16(hdr[3:5]))
		} else {
			r.recLeft = r.buffered()
		}
	} else if r.buffered() == 0 {
		if r.rerr == nil {
			r.rerr = r.fill()
		}
		if r.buffered() == 0 {
			return 0, r.takeErr()
		}
	}
	n := copy(p[:min(len(p), r.recLeft)], (*r.rbuf)[r.rstart:r.rend])
	r.rstart += n
	r.recLeft -= n
	if r.buffered() == 0 && r.rbuf != nil {
		putBuf(r.rbuf)
		r.rbuf, r.rstart, r.rend = nil, 0, 0
	}
	return n, nil
}

func (r *rawConn) takeErr() error {
	err := r.rerr
	if !errors.Is(err, net.ErrClosed) && err != io.EOF {
		// A transient read error is reported once; EOF and closure stick.
		r.rerr = nil
	}
	return err
}

func (r *rawConn) startBatch() {
	r.wmu.Lock()
	r.batching = true
	r.wmu.Unlock()
}

// endBatch writes what the batch collected and ends it.
func (r *rawConn) endBatch() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.batching = false
	return r.flushLocked()
}

func (r *rawConn) flushLocked() error {
	if r.wbuf == nil {
		return nil
	}
	var err error
	if r.wn > 0 {
		if r.rc != nil {
			_, err = rawWriteAll(r.rc, (*r.wbuf)[:r.wn])
		} else {
			_, err = r.TCPConn.Write((*r.wbuf)[:r.wn])
		}
	}
	putBuf(r.wbuf)
	r.wbuf, r.wn = nil, 0
	return err
}

// Write collects TLS's records while a batch is open and writes through
// otherwise.
func (r *rawConn) Write(p []byte) (int, error) {
	r.wmu.Lock()
	if !r.batching {
		r.wmu.Unlock()
		return r.TCPConn.Write(p)
	}
	defer r.wmu.Unlock()
	if r.wbuf != nil && r.wn+len(p) > len(*r.wbuf) {
		if err := r.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > bufSize {
		return r.TCPConn.Write(p)
	}
	if r.wbuf == nil {
		r.wbuf = getBuf()
	}
	r.wn += copy((*r.wbuf)[r.wn:], p)
	return len(p), nil
}
