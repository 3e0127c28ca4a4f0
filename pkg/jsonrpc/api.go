// Package jsonrpc implements JSON-RPC 2.0: messages, a dispatcher and a
// multiplexing client.
package jsonrpc

// CONTRACT (written by the lead; the implementer keeps these exported names and
// signatures, may add more, and replaces this comment with real docs):
//
//	const Version = "2.0"
//	const CodeParseError=-32700, CodeInvalidRequest=-32600, CodeMethodNotFound=-32601, CodeInvalidParams=-32602, CodeInternalError=-32603
//	type Error struct { Code int `json:"code"`; Message string `json:"message"`; Data json.RawMessage `json:"data,omitempty"` }
//	func (e *Error) Error() string
//	func NewError(code int, message string, data any) *Error
//	type Request struct { JSONRPC string `json:"jsonrpc"`; ID json.RawMessage `json:"id,omitempty"`; Method string `json:"method"`; Params json.RawMessage `json:"params,omitempty"` }
//	func (r *Request) IsNotification() bool      // id member absent (an explicit null id is a request)
//	type Response struct { JSONRPC string `json:"jsonrpc"`; ID json.RawMessage `json:"id"`; Result json.RawMessage `json:"result,omitempty"`; Error *Error `json:"error,omitempty"` }
//	type Kind int; const KindInvalid, KindRequest, KindNotification, KindResponse, KindBatch
//	func Classify(msg []byte) Kind               // cheap; a batch is KindBatch whatever it holds
//	func IsResponse(msg []byte) bool             // a response, or a non-empty batch of responses
//	type HandlerFunc func(ctx context.Context, params json.RawMessage) (result any, err error)
//	    // err may be *Error (sent as is); any other error becomes -32603 with message "internal error"
//	    // (and the original text is NOT sent: only logged by the caller if it wants to)
//	func Handler[P, R any](fn func(ctx context.Context, p P) (R, error)) HandlerFunc  // typed params (strict: unknown fields → -32602)
//	type Dispatcher struct{...}; func NewDispatcher() *Dispatcher   // safe for concurrent use
//	func (d *Dispatcher) Register(method string, h HandlerFunc)
//	func (d *Dispatcher) Methods() []string                          // sorted
//	func (d *Dispatcher) Handle(ctx context.Context, msg []byte) []byte   // nil: nothing to send back
//	type Client struct{...}
//	func NewClient(send func(ctx context.Context, msg []byte) error) *Client
//	func (c *Client) Call(ctx context.Context, method string, params, result any) error   // RPC errors come back as *Error
//	func (c *Client) CallRaw(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)
//	func (c *Client) Notify(ctx context.Context, method string, params any) error
//	func (c *Client) Deliver(msg []byte) bool    // feed a response or a batch of responses; false if not one
//	func (c *Client) Close(err error)            // fails every pending call with an error wrapping ErrClosed and err; safe twice
//	func (c *Client) Pending() int
//	var ErrClosed = errors.New("jsonrpc: connection closed")
