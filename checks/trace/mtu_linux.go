package trace

import (
	"context"
	"fmt"
)

// probeMTU searches the largest ICMP echo, Don't Fragment set, that
// reaches the destination, between the protocol's minimum and the local
// link MTU. When packets above that size vanish without a
// fragmentation-needed, it sweeps the TTL with the first size that fails to
// find the last hop those packets reach.
func (tr *Tracer) probeMTU(ctx context.Context, req Request, rep *Report) (*MTUResult, error) {
	if tr.NoRaw {
		return nil, ErrPermission
	}
	local, err := localMTU(req.Source, req.Destination)
	if err != nil {
		return nil, err
	}
	p, err := newEchoProber(req, 0)
	if err != nil {
		return nil, err
	}
	defer p.close()
	if err := p.setDF(); err != nil {
		return nil, fmt.Errorf("set Don't Fragment: %w", err)
	}
	res := &MTUResult{LocalMTU: local}
	test := func(size int) (bool, error) {
		p.size = size
		for try := 1; try <= req.Tries; try++ {
			if err := tr.wait(ctx, req.Destination); err != nil {
				return false, err
			}
			h, err := p.probe(ctx, MaxMaxHops, try)
			if err != nil {
				return false, err
			}
			switch {
			case h.Reply == ReplyEchoReply:
				return true, nil
			case h.Code == codeFragNeeded:
				if h.Addr != req.Source || !res.FragFrom.IsValid() {
					res.FragFrom, res.NextHopMTU = h.Addr, h.MTU
				}
				return false, nil
			case h.Answered():
				return false, nil
			}
		}
		return false, nil
	}
	lo := 576
	if req.Destination.Is6() {
		lo = 1280
	}
	hi := local
	ok, err := test(hi)
	if err != nil {
		return nil, err
	}
	if ok {
		res.Largest = hi
		res.summarize(rep)
		return res, nil
	}
	if ok, err = test(lo); err != nil {
		return nil, err
	}
	if !ok {
		res.summarize(rep)
		return res, nil
	}
	// lo passes and hi fails; at most log2(65536) steps.
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if res.NextHopMTU > lo && res.NextHopMTU < hi {
			mid = res.NextHopMTU // the router said which size fits: try it next
		}
		ok, err := test(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	res.Largest = lo
	if !res.FragFrom.IsValid() {
		// Black hole: where do packets of size hi still arrive?
		p.size = hi
		for ttl := 1; ttl <= req.MaxHops; ttl++ {
			if err := tr.wait(ctx, req.Destination); err != nil {
				return nil, err
			}
			h, err := p.probe(ctx, ttl, 1)
			if err != nil {
				return nil, err
			}
			if h.Reply != ReplyTimeExceeded {
				break
			}
			h.TTL = ttl
			res.BigReach = h
		}
		res.FirstFailing = hi
	}
	res.summarize(rep)
	return res, nil
}
