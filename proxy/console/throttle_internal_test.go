package console

import (
	"strconv"
	"testing"
	"time"
)

func TestThrottle_PerAddressThenInTotal_RefillsOverTime(t *testing.T) {
	now := time.Now()
	th := newThrottle(rate{3, time.Minute}, rate{5, time.Minute}, 100)
	for i := range 3 {
		if ok, _ := th.allow("10.0.0.1", now); !ok {
			t.Fatalf("attempt %d of 3 refused", i)
		}
	}
	if ok, wait := th.allow("10.0.0.1", now); ok || wait <= 0 || wait > 20*time.Second {
		t.Errorf("fourth attempt from one address: allowed %v, wait %v; want refused, ~20 s", ok, wait)
	}
	// Other addresses take what is left of the total, then none.
	th.allow("10.0.0.2", now)
	th.allow("10.0.0.3", now)
	if ok, _ := th.allow("10.0.0.4", now); ok {
		t.Error("a sixth attempt in total was allowed; want the overall limit to hold")
	}
	if ok, _ := th.allow("10.0.0.1", now.Add(time.Minute)); !ok {
		t.Error("a minute later the address is still refused")
	}
}

func TestThrottle_ManyAddresses_MemoryStaysBounded(t *testing.T) {
	now := time.Now()
	th := newThrottle(rate{3, time.Minute}, rate{1e9, time.Minute}, 50)
	for i := range 10000 {
		th.allow("10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), now)
		if len(th.perIP) > 50 {
			t.Fatalf("%d addresses tracked after %d; want at most 50", len(th.perIP), i+1)
		}
	}
	// Past the cap, unseen addresses share one bucket: they are throttled
	// together rather than let through.
	refused := 0
	for i := range 10 {
		if ok, _ := th.allow("192.168.0."+strconv.Itoa(i), now); !ok {
			refused++
		}
	}
	if refused == 0 {
		t.Error("addresses past the cap are not throttled")
	}
	// Once their buckets refill, old addresses are forgotten for new ones.
	if ok, _ := th.allow("172.16.0.1", now.Add(time.Hour)); !ok || len(th.perIP) > 50 {
		t.Errorf("an hour later: allowed %v, %d tracked", ok, len(th.perIP))
	}
}
