package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

type rec struct {
	N int `json:"n"`
}

func TestPutGetListDelete(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "sub", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	// A read before any write must not fail on the missing bucket.
	err = db.View(func(tx *bolt.Tx) error {
		_, err := Get[rec](tx, "b", "x")
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on empty db: %v, want ErrNotFound", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for i := range 5 {
			if err := Put(tx, "b", fmt.Sprintf("k/%d", i), rec{N: i}); err != nil {
				return err
			}
		}
		return Put(tx, "b", "other", rec{N: 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	err = db.View(func(tx *bolt.Tx) error {
		return List(tx, "b", "k/", func(_ string, v rec) error { seen = append(seen, v.N); return nil })
	})
	if err != nil || fmt.Sprint(seen) != "[0 1 2 3 4]" {
		t.Fatalf("List = %v, %v", seen, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return Delete(tx, "b", "k/3") }); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error { _, err := Get[rec](tx, "b", "k/3"); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// TestConcurrentProcesses increments one counter from several processes and
// goroutines at once; a lost update would show as a smaller total.
func TestConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	const procs, perProc = 3, 40
	var wg sync.WaitGroup
	errs := make(chan error, procs+1)
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "STORE_CHILD_DB="+path, "STORE_CHILD_N="+strconv.Itoa(perProc))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("child: %v: %s", err, out)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); errs <- increment(path, perProc) }()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db, _ := Open(path)
	var got rec
	if err := db.View(func(tx *bolt.Tx) (err error) { got, err = Get[rec](tx, "c", "n"); return }); err != nil {
		t.Fatal(err)
	}
	if want := (procs + 1) * perProc; got.N != want {
		t.Fatalf("counter = %d, want %d (lost updates)", got.N, want)
	}
}

// TestMain lets TestConcurrentProcesses run this binary as a child that
// increments the counter.
func TestMain(m *testing.M) {
	if path := os.Getenv("STORE_CHILD_DB"); path != "" {
		n, _ := strconv.Atoi(os.Getenv("STORE_CHILD_N"))
		if err := increment(path, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func increment(path string, n int) error {
	db, err := Open(path)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.Update(func(tx *bolt.Tx) error {
				v, err := Get[rec](tx, "c", "n")
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				v.N++
				return Put(tx, "c", "n", v)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
