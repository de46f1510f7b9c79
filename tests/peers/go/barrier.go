package main

import "github.com/go-zookeeper/zk"

// Barrier is the Go original zksync's barrier: the node at its path.  It is set while the
// node exists.
type Barrier struct {
	conn *zk.Conn
	path string
	acl  []zk.ACL
}

// NewBarrier makes a barrier object; nothing is sent until it is used.
func NewBarrier(conn *zk.Conn, path string, acl []zk.ACL) *Barrier {
	return &Barrier{conn: conn, path: path, acl: acl}
}

// Set creates the node (persistent, parents made as needed); zk.ErrNodeExists when it is
// already set.
func (b *Barrier) Set() error {
	_, err := b.conn.Create(b.path, []byte{}, 0, b.acl)
	if err == zk.ErrNoNode {
		if err := makeParents(b.conn, b.path, b.acl); err != nil {
			return err
		}
		_, err = b.conn.Create(b.path, []byte{}, 0, b.acl)
	}
	return err
}

// Unset deletes the node at the version it was read with; zk.ErrNoNode when it is not set.
func (b *Barrier) Unset() error {
	_, stat, err := b.conn.Get(b.path)
	if err != nil {
		return err
	}
	return b.conn.Delete(b.path, stat.Version)
}

// Wait returns once the node is gone.
func (b *Barrier) Wait() error {
	for {
		exists, _, events, err := b.conn.ExistsW(b.path)
		if err != nil {
			return err
		}
		if !exists {
			return nil
		}
		<-events
	}
}
