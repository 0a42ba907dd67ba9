package load

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

// DurableBare is the physical floor of what a relay must do with a push
// before it answers: read it, append it to a file, and have it on disk,
// with one fsync for every push that arrived while the previous one ran
// (group commit, as the relay's ingest writer does). It decrypts, parses
// and indexes nothing. Comparing a relay with it separates what the relay
// adds from what the disk costs; the bare handler, which stores nothing,
// moves with the disk's speed no more than the relay does.
type DurableBare struct {
	f     *os.File
	queue chan durableWrite
	done  chan struct{}
}

type durableWrite struct {
	body []byte
	err  chan error
}

// NewDurableBare appends pushes to path, created if missing.
func NewDurableBare(path string) (*DurableBare, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("load: durable bare handler: %w", err)
	}
	d := &DurableBare{f: f, queue: make(chan durableWrite, 1024), done: make(chan struct{})}
	go d.write()
	return d, nil
}

// write commits the queued pushes in groups: everything queued while the
// last fsync ran goes into the next.
func (d *DurableBare) write() {
	defer close(d.done)
	w := bufio.NewWriterSize(d.f, 1<<20)
	batch := make([]durableWrite, 0, 256)
	for first := range d.queue {
		batch = append(batch[:0], first)
	more:
		for len(batch) < cap(batch) {
			select {
			case p, ok := <-d.queue:
				if !ok {
					break more
				}
				batch = append(batch, p)
			default:
				break more
			}
		}
		var err error
		for _, p := range batch {
			if _, err = w.Write(p.body); err != nil {
				break
			}
			w.WriteByte('\n')
		}
		if err == nil {
			err = w.Flush()
		}
		if err == nil {
			err = d.f.Sync()
		}
		for _, p := range batch {
			p.err <- err
		}
	}
}

// ServeHTTP reads the push, has it committed, and answers "success".
func (d *DurableBare) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "could not read the push", http.StatusBadRequest)
		return
	}
	p := durableWrite{body: body, err: make(chan error, 1)}
	d.queue <- p
	if err := <-p.err; err != nil {
		http.Error(w, "could not store the push", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "success")
}

// Close stops the writer once the queued pushes are committed.
func (d *DurableBare) Close() error {
	close(d.queue)
	<-d.done
	return d.f.Close()
}

// NewDurableBareHTTPServer is NewBareHTTPServer for a DurableBare.
func NewDurableBareHTTPServer(d *DurableBare, errLog *log.Logger) *http.Server {
	return &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
}
