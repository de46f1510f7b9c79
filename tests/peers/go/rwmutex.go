package main

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

// The Go original zksync's readers-writer lock, its algorithm kept as it was:
//
//   - a node is go-zookeeper's protected ephemeral-sequential path+"/write-" or path+"/read-"
//     (_c_<32 hex>-write-<10 digits>), parents created when missing;
//   - a name's sequence is the number after its last "read-" or "write-"; its type is read
//     when it contains "read-", else write when it contains "write-";
//   - a writer waits for the lowest-numbered child of any type, and gives up with
//     ErrMalformedLock on a child it cannot parse; a reader waits for the lowest-numbered
//     writer and passes over every other name;
//   - it waits with an exists watch on that child, and lists again after any event;
//   - unlock deletes its node.

// ErrMalformedLock is returned for a child whose sequence number cannot be read.
var ErrMalformedLock = errors.New("not a valid lock")

// ErrNoLockPresent is returned by Unlock when nothing is held.
var ErrNoLockPresent = errors.New("not currently holding a lock")

type nodeType int

const (
	otherNode nodeType = iota
	readNode
	writeNode
	anyNode
)

// RWMutex is the Go original's lock on one path.
type RWMutex struct {
	conn *zk.Conn
	path string
	acl  []zk.ACL
	held string // full path of the node we hold
}

// NewRWMutex makes a lock object; nothing is sent until it is used.
func NewRWMutex(conn *zk.Conn, path string, acl []zk.ACL) *RWMutex {
	return &RWMutex{conn: conn, path: path, acl: acl}
}

// WLock takes the write lock and returns the name of its node.
func (m *RWMutex) WLock() (string, error) { return m.acquire(writeNode) }

// RLock takes a read lock and returns the name of its node.
func (m *RWMutex) RLock() (string, error) { return m.acquire(readNode) }

// Unlock deletes the node we hold.
func (m *RWMutex) Unlock() error {
	if m.held == "" {
		return ErrNoLockPresent
	}
	if err := m.conn.Delete(m.held, -1); err != nil {
		return err
	}
	m.held = ""
	return nil
}

func (m *RWMutex) acquire(t nodeType) (string, error) {
	prefix := m.path + "/write-"
	blockedBy := anyNode
	if t == readNode {
		prefix = m.path + "/read-"
		blockedBy = writeNode
	}
	created, err := m.conn.CreateProtectedEphemeralSequential(prefix, []byte{}, m.acl)
	if err == zk.ErrNoNode {
		if err := makeParents(m.conn, prefix, m.acl); err != nil {
			return "", err
		}
		created, err = m.conn.CreateProtectedEphemeralSequential(prefix, []byte{}, m.acl)
	}
	if err != nil {
		return "", err
	}
	seq, err := sequenceOf(created)
	if err != nil {
		return "", err
	}
	for {
		lowest, lowestSeq, err := m.lowest(blockedBy)
		if err != nil {
			return "", err
		}
		if seq <= lowestSeq {
			break
		}
		exists, _, events, err := m.conn.ExistsW(m.path + "/" + lowest)
		if err != nil {
			return "", err
		}
		if exists {
			if ev := <-events; ev.Err != nil {
				return "", ev.Err
			}
		}
	}
	m.held = created
	return created[strings.LastIndex(created, "/")+1:], nil
}

// lowest is the lowest-numbered child of type t (anyNode: every child), with its number;
// math.MaxInt32 when there is none.
func (m *RWMutex) lowest(t nodeType) (string, int, error) {
	names, _, err := m.conn.Children(m.path)
	if err != nil {
		return "", 0, err
	}
	lowestName, lowestSeq := "", math.MaxInt32
	for _, name := range names {
		if t != anyNode && typeOf(name) != t {
			continue
		}
		seq, err := sequenceOf(name)
		if err != nil {
			return "", 0, err
		}
		if seq < lowestSeq {
			lowestName, lowestSeq = name, seq
		}
	}
	return lowestName, lowestSeq, nil
}

func sequenceOf(path string) (int, error) {
	name := path[strings.LastIndex(path, "/")+1:]
	for _, marker := range []string{"read-", "write-"} {
		if at := strings.LastIndex(name, marker); at >= 0 {
			seq, err := strconv.Atoi(name[at+len(marker):])
			if err != nil {
				return 0, ErrMalformedLock
			}
			return seq, nil
		}
	}
	return 0, ErrMalformedLock
}

func typeOf(name string) nodeType {
	if strings.Contains(name, "read-") {
		return readNode
	}
	if strings.Contains(name, "write-") {
		return writeNode
	}
	return otherNode
}

// makeParents creates every missing ancestor of path (not path itself).
func makeParents(conn *zk.Conn, path string, acl []zk.ACL) error {
	parts := strings.Split(path, "/")
	prefix := ""
	for _, part := range parts[1 : len(parts)-1] {
		prefix += "/" + part
		_, err := conn.Create(prefix, []byte{}, 0, acl)
		if err != nil && err != zk.ErrNodeExists {
			return err
		}
	}
	return nil
}
