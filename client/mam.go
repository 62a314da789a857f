package client

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// EnableCarbons enables XEP-0280 Message Carbons for this resource.
func (c *Client) EnableCarbons(ctx context.Context) error {
	iq := xmltree.New(NSClient, "iq", "type", "set")
	iq.Append(xmltree.New(NSCarbons, "enable"))
	_, err := c.IQ(ctx, iq)
	return err
}

// ArchiveQuery filters a XEP-0313 query. Zero fields are not sent.
type ArchiveQuery struct {
	With       jid.JID
	Start, End time.Time
	// Max is the page size (RSM). After/Before page forward from an id or
	// backward to one; Before with an empty string "" (BeforeLast) asks
	// for the last page.
	Max        int
	After      string
	Before     string
	BeforeLast bool
}

// ArchivedMessage is one archive result.
type ArchivedMessage struct {
	ID      string // the archive's id for the message
	Stamp   time.Time
	Message *xmltree.Element
}

// ArchivePage is one page of results.
type ArchivePage struct {
	Messages    []ArchivedMessage
	First, Last string // RSM ids for paging
	Count       int    // total count, when the server reports it (-1 otherwise)
	Complete    bool
}

type mamCollector struct {
	results []ArchivedMessage
}

type mamState struct {
	mu      sync.Mutex
	pending map[string]*mamCollector
}

func (m *mamState) init() { m.pending = map[string]*mamCollector{} }

// collect takes a MAM <result/> for a pending query. It runs on the read
// loop, so results are complete when the query's IQ result is read.
func (m *mamState) collect(c *Client, st *xmltree.Element) bool {
	r := st.Child(NSMAM, "result")
	if r == nil {
		return false
	}
	// Results for our own archive come from our bare JID (we only query
	// our own archive); anything else carrying <result/> is an ordinary
	// message and goes through the pipeline like any other.
	from, err := c.fromOrAccount(st)
	if err != nil || !from.Equal(c.JID().Bare()) {
		return false
	}
	m.mu.Lock()
	col, ok := m.pending[r.AttrValue("queryid")]
	m.mu.Unlock()
	if !ok {
		// A result of our own archive for a query that timed out.
		return true
	}
	inner, stamp, ok := unwrapForwarded(r)
	if !ok {
		return true
	}
	m.mu.Lock()
	col.results = append(col.results, ArchivedMessage{ID: r.AttrValue("id"), Stamp: stamp, Message: inner})
	m.mu.Unlock()
	return true
}

// QueryArchive runs one XEP-0313 query against our own archive and returns
// one page. Use ArchivePage.Last with ArchiveQuery.After to fetch the next.
func (c *Client) QueryArchive(ctx context.Context, q ArchiveQuery) (*ArchivePage, error) {
	if err := c.needs(func(s ServerInfo) bool { return s.Archive }, "message archive (XEP-0313)"); err != nil {
		return nil, err
	}
	qid := NewID()
	col := &mamCollector{}
	c.mam.mu.Lock()
	c.mam.pending[qid] = col
	c.mam.mu.Unlock()
	defer func() {
		c.mam.mu.Lock()
		delete(c.mam.pending, qid)
		c.mam.mu.Unlock()
	}()

	query := xmltree.New(NSMAM, "query", "queryid", qid)
	form := xmltree.New(NSDataForms, "x", "type", "submit")
	form.Append(formField("FORM_TYPE", "hidden", NSMAM))
	if q.With.Domainpart() != "" {
		form.Append(formField("with", "", q.With.String()))
	}
	if !q.Start.IsZero() {
		form.Append(formField("start", "", q.Start.UTC().Format(time.RFC3339)))
	}
	if !q.End.IsZero() {
		form.Append(formField("end", "", q.End.UTC().Format(time.RFC3339)))
	}
	query.Append(form)
	set := xmltree.New(NSRSM, "set")
	if q.Max > 0 {
		set.Append(xmltree.New(NSRSM, "max").AppendText(strconv.Itoa(q.Max)))
	}
	switch {
	case q.After != "":
		set.Append(xmltree.New(NSRSM, "after").AppendText(q.After))
	case q.Before != "":
		set.Append(xmltree.New(NSRSM, "before").AppendText(q.Before))
	case q.BeforeLast:
		set.Append(xmltree.New(NSRSM, "before"))
	}
	if len(set.Children) > 0 {
		query.Append(set)
	}
	iq := xmltree.New(NSClient, "iq", "type", "set")
	iq.Append(query)
	resp, err := c.IQ(ctx, iq)
	if err != nil {
		return nil, err
	}
	fin := resp.Child(NSMAM, "fin")
	if fin == nil {
		return nil, errors.New("client: MAM result without <fin/>")
	}
	page := &ArchivePage{Complete: fin.AttrValue("complete") == "true", Count: -1}
	if rs := fin.Child(NSRSM, "set"); rs != nil {
		page.First = rs.ChildText(NSRSM, "first")
		page.Last = rs.ChildText(NSRSM, "last")
		if n, err := strconv.Atoi(rs.ChildText(NSRSM, "count")); err == nil {
			page.Count = n
		}
	}
	c.mam.mu.Lock()
	page.Messages = col.results
	c.mam.mu.Unlock()
	return page, nil
}

func formField(v, typ string, values ...string) *xmltree.Element {
	f := xmltree.New(NSDataForms, "field", "var", v)
	if typ != "" {
		f.SetAttr("type", typ)
	}
	for _, val := range values {
		f.Append(xmltree.New(NSDataForms, "value").AppendText(val))
	}
	return f
}
