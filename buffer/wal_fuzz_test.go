package buffer

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadRecords: whatever bytes a WAL file holds (a torn write, a disk
// that returned garbage), reading it never panics; it keeps only whole
// records that re-frame to a prefix of the input, and what follows them is
// either accepted as a torn tail or reported as corruption at exactly the
// offset where they end.
func FuzzReadRecords(f *testing.F) {
	f.Add(frame(frame(nil, []byte(`{"k":"op"}`)), []byte(`{"k":"end"}`)))
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(append(frame(nil, []byte("one")), 0x05, 'j', 'u', 'n', 'k', 'x', 'y', 'z', 'w', 'v'))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, good, err := readRecords(bytes.NewReader(data), int64(len(data)))
		var again []byte
		for _, r := range recs {
			if len(r) == 0 {
				t.Fatal("an empty record was accepted")
			}
			again = frame(again, r)
		}
		if int64(len(again)) != good || !bytes.Equal(again, data[:good]) {
			t.Fatalf("records re-frame to %d bytes, reader kept %d of %d", len(again), good, len(data))
		}
		if err != nil {
			var c *CorruptError
			if !errors.As(err, &c) {
				t.Fatalf("reading from memory failed with %v, want a *CorruptError", err)
			}
			if c.Offset != good {
				t.Fatalf("corruption reported at %d, the intact records end at %d", c.Offset, good)
			}
		}
		// The intact records alone, followed by the preallocated zeros,
		// read back as they are.
		padded := append(bytes.Clone(again), make([]byte, 2*sector)...)
		recs2, good2, err2 := readRecords(bytes.NewReader(padded), int64(len(padded)))
		if err2 != nil || good2 != good || len(recs2) != len(recs) {
			t.Fatalf("the %d intact records with zeros after them: %d records to byte %d, %v", len(recs), len(recs2), good2, err2)
		}
	})
}

// FuzzTornWrite: a log whose last write was cut short at any byte, or lost
// any of its sectors, reads back without error as the records before that
// write.
func FuzzTornWrite(f *testing.F) {
	f.Add(uint16(3), uint32(100), uint64(0))
	f.Add(uint16(20), uint32(0), uint64(0xFFFF))
	f.Fuzz(func(t *testing.T, n uint16, cut uint32, lost uint64) {
		var acked, last []byte
		for i := range 8 {
			acked = frame(acked, bytes.Repeat([]byte{byte('a' + i)}, 1+i*97))
		}
		for i := range int(n%40) + 1 {
			last = frame(last, bytes.Repeat([]byte{byte('A' + i%26)}, 1+i*131))
		}
		file := append(bytes.Clone(acked), last...)
		file = append(file, make([]byte, 4*sector)...) // preallocated zeros
		// The last write reaches the disk only up to the sector boundary
		// before cut, and without the sectors whose bit is set in lost
		// (a disk writes a sector whole or not at all).
		end := max(len(acked), (len(acked)+int(cut)%(len(last)+1))/sector*sector)
		clear(file[end:])
		for s := range 64 {
			if lost&(1<<s) == 0 {
				continue
			}
			from := (len(acked)/sector + s) * sector
			if from < len(acked) {
				from = len(acked) // the acknowledged part of a shared sector is rewritten as it was
			}
			to := min((len(acked)/sector+s+1)*sector, len(file))
			if from < to {
				clear(file[from:to])
			}
		}
		recs, good, err := readRecords(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatalf("a torn last write read as %v", err)
		}
		if good < int64(len(acked)) || !bytes.Equal(file[:good], append(bytes.Clone(acked), last...)[:good]) {
			t.Fatalf("kept %d bytes, which are not the acknowledged %d plus whole records of the last write", good, len(acked))
		}
		if len(recs) < 8 {
			t.Fatalf("kept %d records, want the 8 acknowledged at least", len(recs))
		}
	})
}
