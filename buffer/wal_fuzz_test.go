package buffer

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadRecords: whatever bytes a WAL file holds (a torn write, a disk
// that returned garbage), reading it never panics, keeps only whole records
// that re-frame to a prefix of the input, and stops at the first bad one.
func FuzzReadRecords(f *testing.F) {
	f.Add(frame(frame(nil, []byte(`{"k":"op"}`)), []byte(`{"k":"end"}`)))
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "wal")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		recs, good, err := readRecords(file)
		if err != nil {
			t.Fatal(err)
		}
		var again []byte
		for _, r := range recs {
			if len(r) == 0 {
				t.Fatal("an empty record was accepted")
			}
			again = frame(again, r)
		}
		if int64(len(again)) != good || string(again) != string(data[:good]) {
			t.Fatalf("records re-frame to %d bytes, reader kept %d of %d", len(again), good, len(data))
		}
	})
}
