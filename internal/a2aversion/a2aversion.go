// Package a2aversion translates A2A JSON-RPC traffic between protocol versions 0.3 and 1.0, so
// that a client of either version can call an agent of either version through the router.
//
// It knows next to nothing of HTTP (the version's header names): it names the operations, tells a method's version, and converts
// params, results and stream events from one version's JSON to the other's. The conversions
// themselves are the A2A project's own (a2a-go's a2acompat/a2av0, which its v1 SDK uses to talk
// to 0.3 peers): the router does not write its own reading of either specification.
package a2aversion

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Version is an A2A protocol version, as the A2A-Version header and agent cards spell it.
type Version string

const (
	V03 Version = "0.3"
	V10 Version = "1.0"
)

// Versions are the versions the router speaks, oldest first.
var Versions = []Version{V03, V10}

// Header is the request header that carries the protocol version (A2A 1.0, section 3.6): a 1.0
// client sends it; a request without it is 0.3.
const Header = "A2A-Version"

// extensionsHeaders name the header that lists the A2A extensions a call asks for, by version.
var extensionsHeaders = map[Version]string{V03: "X-A2A-Extensions", V10: "A2A-Extensions"}

// RenameHeaders gives a call's version-specific headers the names of version to (the
// extensions header: X-A2A-Extensions in 0.3, A2A-Extensions in 1.0).
func RenameHeaders(h http.Header, from, to Version) {
	if from == to {
		return
	}
	if v := h.Values(extensionsHeaders[from]); len(v) > 0 {
		h.Del(extensionsHeaders[from])
		h[http.CanonicalHeaderKey(extensionsHeaders[to])] = v
	}
}

// ParseVersion reads a version as a card or header gives it ("0.3", "0.3.0", "1.0", "1.0.0",
// "1"): the major and minor are what count.
func ParseVersion(s string) (Version, bool) {
	switch {
	case s == "1" || s == "1.0" || len(s) > 4 && s[:4] == "1.0.":
		return V10, true
	case s == "0.3" || len(s) > 4 && s[:4] == "0.3.":
		return V03, true
	}
	return "", false
}

// Op is an A2A operation, whatever its method is called in a version.
type Op string

const (
	Send         Op = "send"
	Stream       Op = "stream"
	Get          Op = "get"
	List         Op = "list"
	Cancel       Op = "cancel"
	Subscribe    Op = "subscribe"
	PushSet      Op = "push-set"
	PushGet      Op = "push-get"
	PushList     Op = "push-list"
	PushDelete   Op = "push-delete"
	ExtendedCard Op = "extended-card"
)

// methodNames are each operation's JSON-RPC method in 0.3 and in 1.0.
var methodNames = map[Op][2]string{
	Send:         {"message/send", "SendMessage"},
	Stream:       {"message/stream", "SendStreamingMessage"},
	Get:          {"tasks/get", "GetTask"},
	List:         {"tasks/list", "ListTasks"},
	Cancel:       {"tasks/cancel", "CancelTask"},
	Subscribe:    {"tasks/resubscribe", "SubscribeToTask"},
	PushSet:      {"tasks/pushNotificationConfig/set", "CreateTaskPushNotificationConfig"},
	PushGet:      {"tasks/pushNotificationConfig/get", "GetTaskPushNotificationConfig"},
	PushList:     {"tasks/pushNotificationConfig/list", "ListTaskPushNotificationConfigs"},
	PushDelete:   {"tasks/pushNotificationConfig/delete", "DeleteTaskPushNotificationConfig"},
	ExtendedCard: {"agent/getAuthenticatedExtendedCard", "GetExtendedAgentCard"},
}

// aliases are method names some 1.0 drafts and SDKs used for an operation.
var aliases = map[string]Op{"ListTaskPushNotificationConfig": PushList}

type method struct {
	op      Op
	version Version
}

var byMethod = func() map[string]method {
	m := map[string]method{}
	for op, names := range methodNames {
		m[names[0]] = method{op, V03}
		m[names[1]] = method{op, V10}
	}
	for name, op := range aliases {
		m[name] = method{op, V10}
	}
	return m
}()

// ParseMethod tells the operation of a JSON-RPC method and the version that names it so.
func ParseMethod(name string) (Op, Version, bool) {
	m, ok := byMethod[name]
	return m.op, m.version, ok
}

// Method is the operation's method name in version v.
func (op Op) Method(v Version) string {
	if v == V10 {
		return methodNames[op][1]
	}
	return methodNames[op][0]
}

// Streams tells whether the operation's answer is an SSE stream of events.
func (op Op) Streams() bool { return op == Stream || op == Subscribe }

// Idempotent tells whether the operation only reads, so that a call whose connection failed
// may be sent again.
func (op Op) Idempotent() bool {
	switch op {
	case Get, List, PushGet, PushList, ExtendedCard:
		return true
	}
	return false
}

// Params converts an operation's params from one version's JSON to the other's.
func Params(op Op, from, to Version, raw json.RawMessage) (json.RawMessage, error) {
	if from == to {
		return raw, nil
	}
	c, ok := paramConversions[op]
	if !ok {
		return nil, fmt.Errorf("a2aversion: no conversion of %s params", op)
	}
	return convert(c, from, to, raw)
}

// Result converts an operation's result from one version's JSON to the other's. For a
// streaming operation, Event converts each event instead.
func Result(op Op, from, to Version, raw json.RawMessage) (json.RawMessage, error) {
	if from == to {
		return raw, nil
	}
	c, ok := resultConversions[op]
	if !ok {
		return nil, fmt.Errorf("a2aversion: no conversion of %s results", op)
	}
	return convert(c, from, to, raw)
}

// Event converts one event of a stream (the result of one SSE message) from one version's JSON
// to the other's.
func Event(from, to Version, raw json.RawMessage) (json.RawMessage, error) {
	if from == to {
		return raw, nil
	}
	return convert(eventConversion, from, to, raw)
}

// ErrorCode is the code of an A2A error in version to. The codes both versions define are the
// same; ExtensionSupportRequired (-32008) and VersionNotSupported (-32009) are 1.0's, and a 0.3
// client knows either as UnsupportedOperation (-32004).
func ErrorCode(code int, to Version) int {
	if to == V03 && (code == codeExtensionSupportRequired || code == codeVersionNotSupported) {
		return codeUnsupportedOperation
	}
	return code
}

const (
	codeUnsupportedOperation     = -32004
	codeExtensionSupportRequired = -32008
	codeVersionNotSupported      = -32009
)

// convert runs a conversion in the direction asked.
func convert(c conversion, from, to Version, raw json.RawMessage) (json.RawMessage, error) {
	var (
		out any
		err error
	)
	switch {
	case from == V03 && to == V10:
		out, err = c.up(raw)
	case from == V10 && to == V03:
		out, err = c.down(raw)
	default:
		return nil, fmt.Errorf("a2aversion: no conversion from %q to %q", from, to)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
