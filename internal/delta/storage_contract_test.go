package delta

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// testStorageContract checks the Storage semantics Delta relies on against
// store, which must be empty.
func testStorageContract(t *testing.T, store Storage) {
	ctx := t.Context()
	t.Run("read missing", func(t *testing.T) {
		if _, err := store.Read(ctx, "missing/key.json"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Read of a missing key: %v, want ErrNotExist", err)
		}
	})
	t.Run("write replaces", func(t *testing.T) {
		for _, body := range []string{"one", "two, longer"} {
			if err := store.Write(ctx, "w/obj.txt", []byte(body)); err != nil {
				t.Fatal(err)
			}
			got, err := store.Read(ctx, "w/obj.txt")
			if err != nil || string(got) != body {
				t.Fatalf("Read after Write(%q): %q, %v", body, got, err)
			}
		}
		if err := store.Write(ctx, "w/empty", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := store.Read(ctx, "w/empty"); err != nil || len(got) != 0 {
			t.Fatalf("empty object: %q, %v", got, err)
		}
	})
	t.Run("put if absent", func(t *testing.T) {
		key := "_delta_log/00000000000000000000.json"
		if err := store.PutIfAbsent(ctx, key, []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := store.PutIfAbsent(ctx, key, []byte("second")); !errors.Is(err, ErrExist) {
			t.Fatalf("second PutIfAbsent: %v, want ErrExist", err)
		}
		if got, err := store.Read(ctx, key); err != nil || string(got) != "first" {
			t.Fatalf("after a refused PutIfAbsent: %q, %v; want the first", got, err)
		}
	})
	t.Run("put if absent races", func(t *testing.T) {
		const racers = 8
		key := "_delta_log/00000000000000000001.json"
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() { errs[i] = store.PutIfAbsent(ctx, key, fmt.Appendf(nil, "racer %d", i)) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("racers %d and %d both won", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrExist):
				t.Fatalf("racer %d: %v, want nil or ErrExist", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no racer won")
		}
		if got, err := store.Read(ctx, key); err != nil || string(got) != fmt.Sprintf("racer %d", winner) {
			t.Fatalf("object %q, %v; want racer %d's", got, err, winner)
		}
	})
	t.Run("list", func(t *testing.T) {
		for _, k := range []string{"l/a/2", "l/a/1", "l/a/b/3", "l/ab", "l/b/1", "l/a/10"} {
			if err := store.Write(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			prefix, startAt string
			want            []string
		}{
			{"l/a/", "", []string{"l/a/1", "l/a/10", "l/a/2", "l/a/b/3"}},
			{"l/a/", "l/a/10", []string{"l/a/10", "l/a/2", "l/a/b/3"}},
			{"l/a/", "l/a/11", []string{"l/a/2", "l/a/b/3"}},
			{"l/a", "", []string{"l/a/1", "l/a/10", "l/a/2", "l/a/b/3", "l/ab"}},
			{"l/", "l/ab", []string{"l/ab", "l/b/1"}},
			{"l/nope/", "", nil},
			{"l/a/", "l/z", nil},
		} {
			got, err := store.List(ctx, tc.prefix, tc.startAt)
			if err != nil {
				t.Fatalf("List(%q, %q): %v", tc.prefix, tc.startAt, err)
			}
			var keys []string
			for _, fi := range got {
				keys = append(keys, fi.Key)
				if fi.Size != int64(len(fi.Key)) {
					t.Errorf("List(%q, %q): %s has size %d, want %d", tc.prefix, tc.startAt, fi.Key, fi.Size, len(fi.Key))
				}
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("List(%q, %q) = %q, want %q", tc.prefix, tc.startAt, keys, tc.want)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := store.Write(ctx, "d/x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(ctx, "d/x"); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Read(ctx, "d/x"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Read after Delete: %v, want ErrNotExist", err)
		}
		if err := store.Delete(ctx, "d/never"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		if err := store.Write(ctx, "", []byte("x")); err == nil {
			t.Fatal("Write of an empty key succeeded")
		}
	})
}

func TestLocalStorageContract(t *testing.T) {
	store, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testStorageContract(t, store)
}
