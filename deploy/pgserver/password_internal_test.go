package pgserver

import "testing"

func TestWithoutTrust_EveryTrustLineAsksForAPassword(t *testing.T) {
	in := "# TYPE  DATABASE USER ADDRESS METHOD\n" +
		"# host all all 0.0.0.0/0 trust (a comment stays)\n" +
		"local   all  all               trust\n" +
		"host    all  all  127.0.0.1/32 trust\n" +
		"host    all  all  127.0.0.1 255.255.255.255 trust\n" +
		"host    replication all ::1/128 md5\n" +
		"hostssl all  all  ::1/128      trust clientcert=verify-full\n"
	want := "# TYPE  DATABASE USER ADDRESS METHOD\n" +
		"# host all all 0.0.0.0/0 trust (a comment stays)\n" +
		"local\tall\tall\tpeer\n" +
		"host\tall\tall\t127.0.0.1/32\tscram-sha-256\n" +
		"host\tall\tall\t127.0.0.1\t255.255.255.255\tscram-sha-256\n" +
		"host    replication all ::1/128 md5\n" +
		"hostssl\tall\tall\t::1/128\tscram-sha-256\tclientcert=verify-full\n"
	got, trusted := withoutTrust([]byte(in))
	if !trusted || string(got) != want {
		t.Errorf("withoutTrust = %v\n%s\nwant\n%s", trusted, got, want)
	}
	if again, trusted := withoutTrust(got); trusted || string(again) != want {
		t.Errorf("a second pass changed something: %v\n%s", trusted, again)
	}
}
