package spool_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/loom-gateway/loom/proxy/spool"
)

// The writer appends from the request path; the shipper reads committed
// batches, sends each until it is accepted, and acknowledges it.
func Example() {
	dir, _ := os.MkdirTemp("", "spool-example")
	defer os.RemoveAll(dir)
	s, err := spool.Open(spool.Options{Dir: dir, CommitInterval: 5 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}

	for _, call := range []string{"call 1", "call 2", "call 3"} {
		if err := s.Append([]byte(call)); err != nil {
			// ErrFull: count the call as dropped, or refuse new calls.
			log.Print(err)
		}
	}

	send := func(records [][]byte) error { // e.g. one OTLP export
		for _, r := range records {
			fmt.Println(string(r))
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for shipped := 0; shipped < 3; {
		b, err := s.Read(ctx, 4<<20, 1000)
		if err != nil {
			log.Fatal(err)
		}
		for send(b.Records) != nil {
			time.Sleep(time.Second) // retry the same batch; Records stay valid until the next Read
		}
		if err := s.Ack(b); err != nil {
			log.Fatal(err)
		}
		shipped += len(b.Records)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// call 1
	// call 2
	// call 3
}
