package delta

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// memStorage is an in-memory Storage for benchmarks that exclude the disk.
type memStorage struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func newMemStorage() *memStorage { return &memStorage{objs: map[string][]byte{}} }

func (m *memStorage) Location() string { return "mem://" }

func (m *memStorage) Read(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, key)
	}
	return b, nil
}

func (m *memStorage) List(_ context.Context, prefix, startAt string) ([]FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []FileInfo
	for k, b := range m.objs {
		if strings.HasPrefix(k, prefix) && k >= startAt {
			out = append(out, FileInfo{Key: k, Size: int64(len(b)), ModTime: time.Now()})
		}
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (m *memStorage) Write(_ context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = data
	return nil
}

func (m *memStorage) PutIfAbsent(_ context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		return fmt.Errorf("%w: %s", ErrExist, key)
	}
	m.objs[key] = data
	return nil
}

func (m *memStorage) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}
