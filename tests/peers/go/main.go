// Command zksync-go-peer is a ZooKeeper client driven line by line from zksync's interop
// tests (see ../README.md for the protocol).  It runs go-zookeeper's own zk.Lock, and the Go
// original zksync's RWMutex and Barrier, done again here with their algorithms unchanged.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

const connectWait = 30 * time.Second

// A recipe answers one command; it is only ever called from the command goroutine.
type recipe interface {
	handle(command string) (string, error)
}

var errUnknown = errors.New("unknown command")

func main() {
	servers := flag.String("servers", "", "host:port,... of the ensemble")
	path := flag.String("path", "", "absolute path of the recipe")
	name := flag.String("recipe", "", "zk-lock, go-rwmutex or go-barrier")
	sessionTimeout := flag.Float64("session-timeout", 10, "session timeout in seconds")
	flag.Parse()
	log.SetOutput(os.Stderr)
	log.SetPrefix("go-peer: ")
	if *servers == "" || !strings.HasPrefix(*path, "/") {
		log.Fatal("usage: zksync-go-peer --servers host:port,... --path /absolute/path --recipe NAME [--session-timeout S]")
	}

	conn, events, err := zk.Connect(strings.Split(*servers, ","), time.Duration(*sessionTimeout*float64(time.Second)))
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	if err := waitForSession(events); err != nil {
		log.Fatalf("connect: %v", err)
	}
	go func() { // keep the event channel drained; state changes go to the log
		for ev := range events {
			log.Printf("event: %v %v", ev.Type, ev.State)
		}
	}()

	acl := zk.WorldACL(zk.PermAll)
	var r recipe
	switch *name {
	case "zk-lock":
		r = &zkLock{conn: conn, path: *path, lock: zk.NewLock(conn, *path, acl)}
	case "go-rwmutex":
		r = &rwRecipe{mutex: NewRWMutex(conn, *path, acl)}
	case "go-barrier":
		r = &barrierRecipe{barrier: NewBarrier(conn, *path, acl)}
	default:
		log.Fatalf("unknown recipe %q", *name)
	}

	out := &replies{}
	out.line("ready")
	commands := make(chan string, 64)
	done := make(chan struct{})
	go func() { // commands run one after another, so replies come in the order sent
		defer close(done)
		for command := range commands {
			out.answer(command, conn, *path, r)
		}
	}()
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		command := strings.TrimSpace(scanner.Text())
		if command == "quit" {
			break
		}
		if command != "" {
			commands <- command
		}
	}
	close(commands)
	conn.Close() // ends the session: whatever this peer held is released
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

func waitForSession(events <-chan zk.Event) error {
	timer := time.NewTimer(connectWait)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("connection closed")
			}
			if ev.State == zk.StateHasSession {
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("no session within %v", connectWait)
		}
	}
}

// replies writes one line per command on stdout (unbuffered in Go: each line goes out at once).
type replies struct{ mu sync.Mutex }

func (o *replies) line(text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintln(os.Stdout, text)
}

func (o *replies) answer(command string, conn *zk.Conn, path string, r recipe) {
	var result string
	var err error
	if command == "children" {
		result, err = children(conn, path)
	} else {
		result, err = r.handle(command)
	}
	if err != nil {
		o.line("err " + oneLine(err.Error()))
		return
	}
	if result == "" {
		o.line("ok")
	} else {
		o.line("ok " + result)
	}
}

func oneLine(text string) string {
	return strings.Join(strings.Fields(text), " ")
}

func children(conn *zk.Conn, path string) (string, error) {
	names, _, err := conn.Children(path)
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	return strings.Join(names, ","), nil
}

// zkLock drives go-zookeeper's zk.Lock.  It keeps the name of its node to itself, so the peer
// reports the child of path that its own session owns.
type zkLock struct {
	conn *zk.Conn
	path string
	lock *zk.Lock
}

func (z *zkLock) handle(command string) (string, error) {
	switch command {
	case "lock":
		if err := z.lock.Lock(); err != nil {
			return "", err
		}
		return ownedChild(z.conn, z.path)
	case "unlock":
		return "", z.lock.Unlock()
	case "rlock":
		return "", errors.New("zk.Lock has no read lock")
	}
	return "", errUnknown
}

func ownedChild(conn *zk.Conn, path string) (string, error) {
	names, _, err := conn.Children(path)
	if err != nil {
		return "", err
	}
	session := conn.SessionID()
	for _, name := range names {
		exists, stat, err := conn.Exists(path + "/" + name)
		if err != nil {
			return "", err
		}
		if exists && stat.EphemeralOwner == session {
			return name, nil
		}
	}
	return "", errors.New("acquired, but no child of the lock path belongs to this session")
}

type rwRecipe struct{ mutex *RWMutex }

func (r *rwRecipe) handle(command string) (string, error) {
	switch command {
	case "lock":
		return r.mutex.WLock()
	case "rlock":
		return r.mutex.RLock()
	case "unlock":
		return "", r.mutex.Unlock()
	}
	return "", errUnknown
}

type barrierRecipe struct{ barrier *Barrier }

func (b *barrierRecipe) handle(command string) (string, error) {
	switch command {
	case "set":
		return "", b.barrier.Set()
	case "unset":
		return "", b.barrier.Unset()
	case "wait":
		return "", b.barrier.Wait()
	}
	return "", errUnknown
}
