package rollup

// LockKey is lockKey, for the tests that hold it.
const LockKey = lockKey
