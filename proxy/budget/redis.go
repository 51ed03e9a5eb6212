package budget

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps counters in Redis, shared by every replica that uses the
// same server and prefix. Each operation is one Lua script over all the
// call's counters (EVALSHA), atomic, so two replicas never together pass a
// budget. A counter is the hash
// prefix+"{"+tenant+"}:"+subject+":"+period+":"+start date with fields s
// (spent), r (reserved) and a (alerted); the tenant in braces is a hash
// tag, so that one tenant's counters sit in one Redis Cluster slot. A
// counter expires an hour after its period ends.
//
// Amounts are added with HINCRBY, exact to the unit; the scripts compare
// them as Lua numbers (doubles), exact to within a few 1e-12 units at any
// spend below a million currency units.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client, its keys under prefix
// ("loom:budget:" say). The client is the caller's to close. Every Reserve
// waits on client: give it short timeouts, as for limit.NewRedis.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// reserveScript: KEYS the counters; ARGV[1] the estimate, then for each
// counter i limit (ARGV[3i-1]), alert threshold (ARGV[3i]) and expiry
// (ARGV[3i+1], Unix seconds). Returns the index of the refusing counter (0
// when it took), then for each counter spent, reserved and 1 if it just
// crossed its threshold, all as strings (numbers past 2^53 stay exact).
var reserveScript = redis.NewScript(`
local est = tonumber(ARGV[1])
local n = #KEYS
local refused = 0
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  if tonumber(v[1] or '0') + tonumber(v[2] or '0') + est > tonumber(ARGV[3*i-1]) then refused = i; break end
end
if refused == 0 then
  for i = 1, n do
    redis.call('HINCRBY', KEYS[i], 'r', ARGV[1])
    redis.call('EXPIREAT', KEYS[i], ARGV[3*i+1])
  end
end
local out = {tostring(refused)}
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 's', 'r', 'a')
  local s, r, crossed = v[1] or '0', v[2] or '0', '0'
  local at = tonumber(ARGV[3*i])
  if refused == 0 and at > 0 and not v[3] and tonumber(s) + tonumber(r) >= at then
    redis.call('HSET', KEYS[i], 'a', '1')
    crossed = '1'
  end
  out[#out+1] = s
  out[#out+1] = r
  out[#out+1] = crossed
end
return out
`)

// settleScript: KEYS the counters; ARGV[1] the reservation to release
// (negated), ARGV[2] the actual cost, then for each counter i its alert
// threshold (ARGV[2i+1]) and expiry (ARGV[2i+2]). A counter that no longer
// exists is left alone. Returns what reserveScript does, the first element
// "0".
var settleScript = redis.NewScript(`
local out = {'0'}
for i = 1, #KEYS do
  local s, r, crossed = '0', '0', '0'
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('HINCRBY', KEYS[i], 'r', ARGV[1]) < 0 then redis.call('HSET', KEYS[i], 'r', '0') end
    redis.call('HINCRBY', KEYS[i], 's', ARGV[2])
    redis.call('EXPIREAT', KEYS[i], ARGV[2*i+2])
    local v = redis.call('HMGET', KEYS[i], 's', 'r', 'a')
    s, r = v[1] or '0', v[2] or '0'
    local at = tonumber(ARGV[2*i+1])
    if at > 0 and not v[3] and tonumber(s) + tonumber(r) >= at then
      redis.call('HSET', KEYS[i], 'a', '1')
      crossed = '1'
    end
  end
  out[#out+1] = s
  out[#out+1] = r
  out[#out+1] = crossed
end
return out
`)

// CounterKey is the Redis key of counter c of tenant.
func (r *Redis) CounterKey(tenant string, c *Counter) string {
	return r.prefix + "{" + tenant + "}:" + c.Subject + ":" + c.Period.String() + ":" + Key(c.Start)
}

func (r *Redis) keys(cs *Counters) []string {
	keys := make([]string, cs.N)
	for i := range cs.N {
		keys[i] = r.CounterKey(cs.Tenant, &cs.C[i])
	}
	return keys
}

func expiry(c *Counter) int64 { return c.End + int64(forgetAfter/time.Second) }

// Reserve implements Store.
func (r *Redis) Reserve(ctx context.Context, cs Counters, estimate int64) (Result, error) {
	if cs.N == 0 {
		return Result{Refused: -1}, nil
	}
	args := make([]any, 0, 1+3*cs.N)
	args = append(args, estimate)
	for i := range cs.N {
		c := &cs.C[i]
		args = append(args, c.Limit, c.AlertAt, expiry(c))
	}
	reply, err := reserveScript.Run(ctx, r.client, r.keys(&cs), args...).StringSlice()
	if err != nil {
		return Result{}, fmt.Errorf("redis budget reserve %s: %w", cs.Tenant, err)
	}
	return parseReply(reply, cs.N, "reserve")
}

// Settle implements Store.
func (r *Redis) Settle(ctx context.Context, cs Counters, reserved, actual int64) (Result, error) {
	if cs.N == 0 {
		return Result{Refused: -1}, nil
	}
	args := make([]any, 0, 2+2*cs.N)
	args = append(args, -reserved, actual)
	for i := range cs.N {
		c := &cs.C[i]
		args = append(args, c.AlertAt, expiry(c))
	}
	reply, err := settleScript.Run(ctx, r.client, r.keys(&cs), args...).StringSlice()
	if err != nil {
		return Result{}, fmt.Errorf("redis budget settle %s: %w", cs.Tenant, err)
	}
	return parseReply(reply, cs.N, "settle")
}

func parseReply(reply []string, n int, op string) (Result, error) {
	res := Result{Refused: -1}
	if len(reply) != 1+3*n {
		return res, fmt.Errorf("redis budget %s: reply of %d values for %d counters", op, len(reply), n)
	}
	refused, err := strconv.Atoi(reply[0])
	if err != nil || refused < 0 || refused > n {
		return res, fmt.Errorf("redis budget %s: reply %q", op, reply[0])
	}
	res.Refused = refused - 1
	for i := range n {
		v := reply[1+3*i:]
		s, err1 := strconv.ParseInt(v[0], 10, 64)
		rs, err2 := strconv.ParseInt(v[1], 10, 64)
		if err1 != nil || err2 != nil {
			return Result{Refused: -1}, fmt.Errorf("redis budget %s: reply %q, %q", op, v[0], v[1])
		}
		res.Spent[i], res.Reserved[i], res.Alerted[i] = s, rs, v[2] == "1"
	}
	return res, nil
}
