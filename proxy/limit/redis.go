package limit

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps counts in Redis, shared by every replica that uses the same
// server and prefix. Each operation is one atomic Lua script (EVALSHA, on
// one key, so Redis Cluster works too), so two replicas never together pass
// a limit. Nothing is left behind for ever:
//
//   - A window's count is the key prefix+key+":"+window, a string that
//     expires two minutes after it was created: long enough to settle a
//     reservation into it after the window ended, and no longer.
//   - A key's concurrency slots are the sorted set prefix+key, one member
//     per slot, "<replica id>:<sequence>", scored with the time (Redis's
//     own clock, in milliseconds) at which it lapses. Every Acquire first
//     removes the lapsed members, then counts. This replica renews the
//     slots it holds every lease/3 (a goroutine started by the first
//     Acquire, stopped by Close), so a stream may run for hours; when a
//     replica dies its renewals stop and its slots lapse within one lease
//     (30s), after which others can take them. The set itself expires one
//     lease after its last renewal.
//
// It needs Redis 5 or later (scripts that read TIME before writing).
type Redis struct {
	client redis.UniversalClient
	prefix string
	// replica names this Redis value's slots, so that they are told apart
	// from other replicas' in the sorted sets.
	replica string
	lease   time.Duration
	seq     atomic.Uint64

	mu      sync.Mutex
	held    map[string][]string // key → slot members held here
	renewer chan struct{}       // closed to stop renewing; nil until the first Acquire
	renewed chan struct{}       // closed when the renewer has stopped
	closed  bool
}

var _ Store = (*Redis)(nil)

const (
	// windowTTL is how long a window's key lives after its first count.
	windowTTL = 2 * time.Minute
	// slotLease is how long a slot outlives the last renewal of its holder.
	slotLease = 30 * time.Second
)

// NewRedis returns a Store on client, with its keys under prefix
// ("loom:limit:" say). Close it to stop renewing slots. Every Admit waits on
// client, so give it short timeouts (DialTimeout, ReadTimeout and
// WriteTimeout of a few hundred milliseconds, MaxRetries -1, DialerRetries
// 1): with go-redis's defaults each call to a dead server spends about
// 400ms dialing, even when the connection is refused.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return newRedis(client, prefix, slotLease)
}

func newRedis(client redis.UniversalClient, prefix string, lease time.Duration) *Redis {
	return &Redis{
		client:  client,
		prefix:  prefix,
		replica: rand.Text()[:16],
		lease:   lease,
		held:    make(map[string][]string),
	}
}

// takeScript: KEYS[1] the window key; ARGV n, limit, TTL in seconds.
// Returns {count, 1 if taken}.
var takeScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c + n > tonumber(ARGV[2]) then return {c, 0} end
if n == 0 then return {c, 1} end
c = redis.call('INCRBY', KEYS[1], n)
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {c, 1}
`)

// addScript: KEYS[1] the window key; ARGV n, TTL in seconds. The count
// stays at zero or above.
var addScript = redis.NewScript(`
local c = redis.call('INCRBY', KEYS[1], ARGV[1])
if c < 0 then redis.call('INCRBY', KEYS[1], -c) end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// acquireScript: KEYS[1] the slot set; ARGV limit, member, lease in ms.
// Returns {slots held, 1 if acquired}.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local c = redis.call('ZCARD', KEYS[1])
if c >= tonumber(ARGV[1]) then return {c, 0} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {c + 1, 1}
`)

// renewScript: KEYS[1] the slot set; ARGV lease in ms, then members. A
// member already lapsed is not brought back (XX): its slot may be taken.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', exp, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
`)

func (r *Redis) windowKey(key string, window int64) string {
	return r.prefix + key + ":" + strconv.FormatInt(window, 10)
}

// Take implements Store.
func (r *Redis) Take(ctx context.Context, key string, window int64, n, limit int64) (int64, bool, error) {
	res, err := takeScript.Run(ctx, r.client, []string{r.windowKey(key, window)}, n, limit, int64(windowTTL/time.Second)).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("redis take %s: %w", key, err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("redis take %s: reply %v", key, res)
	}
	return res[0], res[1] == 1, nil
}

// Add implements Store.
func (r *Redis) Add(ctx context.Context, key string, window int64, n int64) error {
	if err := addScript.Run(ctx, r.client, []string{r.windowKey(key, window)}, n, int64(windowTTL/time.Second)).Err(); err != nil {
		return fmt.Errorf("redis add %s: %w", key, err)
	}
	return nil
}

// Acquire implements Store.
func (r *Redis) Acquire(ctx context.Context, key string, limit int64) (int64, bool, error) {
	member := r.replica + ":" + strconv.FormatUint(r.seq.Add(1), 10)
	res, err := acquireScript.Run(ctx, r.client, []string{r.prefix + key}, limit, member, r.lease.Milliseconds()).Int64Slice()
	if err != nil {
		// The slot may have been taken with the reply lost: unrenewed, it
		// lapses with its lease.
		return 0, false, fmt.Errorf("redis acquire %s: %w", key, err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("redis acquire %s: reply %v", key, res)
	}
	if res[1] != 1 {
		return res[0], false, nil
	}
	r.mu.Lock()
	r.held[key] = append(r.held[key], member)
	if r.renewer == nil && !r.closed {
		r.renewer, r.renewed = make(chan struct{}), make(chan struct{})
		go r.renew(r.renewer, r.renewed)
	}
	r.mu.Unlock()
	return res[0], true, nil
}

// Release implements Store. It forgets one of the slots this replica holds
// for key before it asks Redis to remove it, so a failed Release leaves that
// slot to lapse with its lease rather than be renewed. Releasing a key
// holding no slot here does nothing.
func (r *Redis) Release(ctx context.Context, key string) error {
	r.mu.Lock()
	ids := r.held[key]
	if len(ids) == 0 {
		r.mu.Unlock()
		return nil
	}
	member := ids[len(ids)-1]
	if len(ids) == 1 {
		delete(r.held, key)
	} else {
		r.held[key] = ids[:len(ids)-1]
	}
	r.mu.Unlock()
	if err := r.client.ZRem(ctx, r.prefix+key, member).Err(); err != nil {
		return fmt.Errorf("redis release %s: %w", key, err)
	}
	return nil
}

// renew extends the leases of the slots held here every lease/3 until stop
// is closed. Failures wait for the next round: a slot that lapses meanwhile
// can be taken by another stream.
func (r *Redis) renew(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(r.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		r.mu.Lock()
		batch := make(map[string][]any, len(r.held))
		for key, ids := range r.held {
			args := make([]any, 0, len(ids)+1)
			args = append(args, r.lease.Milliseconds())
			for _, id := range ids {
				args = append(args, id)
			}
			batch[key] = args
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), r.lease/3)
		for key, args := range batch {
			_ = renewScript.Run(ctx, r.client, []string{r.prefix + key}, args...).Err()
		}
		cancel()
	}
}

// Close stops renewing and gives back the slots still held here (streams
// that outlive Close lose theirs). The Redis client stays open: it is the
// caller's. Use no method but Close after Close.
func (r *Redis) Close(ctx context.Context) error {
	r.stopRenewing()
	r.mu.Lock()
	held := r.held
	r.held = make(map[string][]string)
	r.mu.Unlock()
	var first error
	for key, ids := range held {
		if err := r.client.ZRem(ctx, r.prefix+key, toAny(ids)...).Err(); err != nil && first == nil {
			first = fmt.Errorf("redis release %s: %w", key, err)
		}
	}
	return first
}

// stopRenewing stops the renewer and waits for it, as if this replica had
// died: the slots it holds stay in Redis until their leases lapse.
func (r *Redis) stopRenewing() {
	r.mu.Lock()
	stop, done := r.renewer, r.renewed
	wasClosed := r.closed
	r.closed = true
	r.mu.Unlock()
	if stop != nil && !wasClosed {
		close(stop)
	}
	if done != nil {
		<-done
	}
}

func toAny(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
