package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := lis.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestCoalescingConnKeepsEveryWriteWholeAndInOrder(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	cc := newCoalescingConn(client)
	const writers, each = 16, 500
	var wg sync.WaitGroup
	var mu sync.Mutex // stands in for the library's writer mutex
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("<%02d:%04d>", w, i)
				mu.Lock()
				_, err := cc.Write([]byte(msg))
				mu.Unlock()
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	wg.Wait()
	if err := cc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b := <-got
	if want := writers * each * len("<00:0000>"); len(b) != want {
		t.Fatalf("read %d bytes, want %d", len(b), want)
	}
	next := make([]int, writers)
	for len(b) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(b[:9]), "<%02d:%04d>", &w, &i); err != nil {
			t.Fatalf("torn write at %q: %v", b[:9], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got message %d, want %d (out of order)", w, i, next[w])
		}
		next[w]++
		b = b[9:]
	}
}

func TestCoalescingConnReportsAFailedPeer(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	cc := newCoalescingConn(client)
	defer cc.Close()
	server.(*net.TCPConn).SetLinger(0)
	server.Close() // an RST for the next write
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = cc.Write(bytes.Repeat([]byte("x"), 1024))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset connection never failed")
	}
	if _, err2 := cc.Write([]byte("y")); err2 == nil {
		t.Error("a write after the failure succeeded")
	}
}

func TestCoalescingConnCloseIsIdempotentAndRefusesWrites(t *testing.T) {
	t.Parallel()
	client, _ := tcpPair(t)
	cc := newCoalescingConn(client)
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := cc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestCoalescingConnBoundsWhatItBuffers(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	cc := newCoalescingConn(client)
	// Nobody reads the server side: the kernel buffers fill, then ours;
	// then Write must block rather than grow without bound.
	blocked := make(chan struct{})
	go func() {
		chunk := bytes.Repeat([]byte("z"), 64<<10)
		for {
			if _, err := cc.Write(chunk); err != nil {
				close(blocked)
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	cc.mu.Lock()
	pending := len(cc.pending)
	cc.mu.Unlock()
	if pending > maxPending+64<<10 {
		t.Errorf("%d bytes pending, want at most about %d", pending, maxPending)
	}
	select {
	case <-blocked:
		t.Fatal("Write returned an error instead of blocking")
	default:
	}
	server.Close()
	cc.Close()
	<-blocked // the blocked Write returns once the connection is closed
}
