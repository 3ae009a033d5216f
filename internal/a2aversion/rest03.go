package a2aversion

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	legacy "github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2apb"
	"github.com/a2aproject/a2a-go/a2apb/pbconv"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A2A 0.3's HTTP+JSON binding carries the JSON mapping of the 0.3 protobuf messages
// (SendMessageRequest, SendMessageResponse, StreamResponse, Task), not the JSON-RPC shapes. The
// router reads and writes them with the A2A project's own 0.3 proto and conversions (a2a-go
// v0.3's a2apb and pbconv), and translates everything else through 0.3 JSON-RPC.
//
// pbconv copies a file's bytes between the proto's bytes field and JSON-RPC's base64 string
// as they are, which round-trips between two a2a-go peers over gRPC but not over JSON, where
// both carry the same base64 text: the router encodes and decodes around it (fileBytesAsText).
//
// One field is spelled two ways: the 0.3.0 specification's proto, which @a2a-js/sdk 0.3 follows,
// names a message's parts "content"; a2a-go's later copy of the proto names the same field
// (number 5) "parts". A body is read with either name, and an answer is written with "content",
// the name of the published 0.3.0 specification.
const (
	messageType      protoreflect.FullName = "a2a.v1.Message"
	specPartsName                          = "content"
	a2aGoPartsName                         = "parts"
	protobufPackage  protoreflect.FullName = "google.protobuf"
	restBodyMaxDepth                       = 64
)

var rest03Reader = protojson.UnmarshalOptions{DiscardUnknown: true}

// REST03Params reads the body of a 0.3 HTTP+JSON message:send or message:stream call (a
// SendMessageRequest in the proto's JSON) as the params of the same 0.3 JSON-RPC call.
func REST03Params(body []byte) (json.RawMessage, error) {
	var req a2apb.SendMessageRequest
	if err := unmarshalREST03(body, &req); err != nil {
		return nil, err
	}
	if req.GetRequest() == nil {
		return nil, fmt.Errorf("the body has no message")
	}
	if err := fileBytesAsText(&req, true); err != nil {
		return nil, err
	}
	params, err := pbconv.FromProtoSendMessageRequest(&req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(params)
}

// REST03Result writes a 0.3 JSON-RPC result (or stream event) of op as the 0.3 HTTP+JSON
// binding answers it: a SendMessageResponse for send, a StreamResponse for each event of a
// stream or subscription, a Task for get and cancel, an AgentCard for the extended card.
func REST03Result(op Op, result json.RawMessage) (json.RawMessage, error) {
	var out proto.Message
	switch op {
	case Send, Stream, Subscribe:
		event, err := legacy.UnmarshalEventJSON(result)
		if err != nil {
			return nil, fmt.Errorf("a2aversion: %w", err)
		}
		if op == Send {
			sendResult, ok := event.(legacy.SendMessageResult)
			if !ok {
				return nil, fmt.Errorf("a2aversion: a %T is not a result of message/send", event)
			}
			out, err = pbconv.ToProtoSendMessageResponse(sendResult)
		} else {
			out, err = pbconv.ToProtoStreamResponse(event)
		}
		if err != nil {
			return nil, err
		}
	case Get, Cancel:
		var err error
		if out, err = toProto(result, pbconv.ToProtoTask); err != nil {
			return nil, err
		}
	case ExtendedCard:
		var err error
		if out, err = toProto(result, pbconv.ToProtoAgentCard); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("a2aversion: %s has no 0.3 HTTP+JSON answer the router writes", op)
	}
	if err := fileBytesAsText(out, false); err != nil {
		return nil, err
	}
	b, err := protojson.Marshal(out)
	if err != nil {
		return nil, err
	}
	return renameMessageParts(b, out.ProtoReflect().Descriptor(), a2aGoPartsName, specPartsName)
}

// toProto reads a 0.3 JSON-RPC value of type L and converts it with pbconv's conv.
func toProto[L any, P proto.Message](raw json.RawMessage, conv func(*L) (P, error)) (proto.Message, error) {
	var l L
	if err := unmarshal(raw, &l); err != nil {
		return nil, err
	}
	return conv(&l)
}

// unmarshalREST03 reads one 0.3 proto message from its JSON, a message's parts under either
// name; fields it does not know are ignored, as a later 0.3 revision may add some.
func unmarshalREST03(body []byte, m proto.Message) error {
	renamed, err := renameMessageParts(body, m.ProtoReflect().Descriptor(), specPartsName, a2aGoPartsName)
	if err != nil {
		return err
	}
	return rest03Reader.Unmarshal(renamed, m)
}

// renameMessageParts renames the member from to to in every a2a.v1.Message inside the JSON of
// a proto message of type desc, following the descriptor so that nothing else of that name
// (an artifact's parts) is touched. A message that has both keeps to's.
func renameMessageParts(body []byte, desc protoreflect.MessageDescriptor, from, to string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers in metadata pass as written
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if err := renameIn(v, desc, from, to, 0); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func renameIn(v any, desc protoreflect.MessageDescriptor, from, to string, depth int) error {
	obj, ok := v.(map[string]any)
	if !ok || desc.ParentFile().Package() == protobufPackage {
		return nil // not an object, or a well-known type (metadata's Struct): nothing of ours inside
	}
	if depth > restBodyMaxDepth {
		return fmt.Errorf("the body nests more than %d levels", restBodyMaxDepth)
	}
	if desc.FullName() == messageType {
		if parts, ok := obj[from]; ok {
			delete(obj, from)
			if _, both := obj[to]; !both {
				obj[to] = parts
			}
		}
	}
	fields := desc.Fields()
	for key, member := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil || fd.Message() == nil {
			continue
		}
		switch {
		case fd.IsMap():
			if m, ok := member.(map[string]any); ok && fd.MapValue().Message() != nil {
				for _, e := range m {
					if err := renameIn(e, fd.MapValue().Message(), from, to, depth+1); err != nil {
						return err
					}
				}
			}
		case fd.IsList():
			if list, ok := member.([]any); ok {
				for _, e := range list {
					if err := renameIn(e, fd.Message(), from, to, depth+1); err != nil {
						return err
					}
				}
			}
		default:
			if err := renameIn(member, fd.Message(), from, to, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileBytesAsText rewrites the bytes of every file part in m: into their base64 text (encode,
// before pbconv reads them into JSON-RPC's string), or from it (after pbconv wrote that string
// into the bytes field).
func fileBytesAsText(m proto.Message, encode bool) error {
	var err error
	walkMessages(m.ProtoReflect(), func(msg protoreflect.Message) {
		fp, ok := msg.Interface().(*a2apb.FilePart)
		if !ok || err != nil {
			return
		}
		f, ok := fp.GetFile().(*a2apb.FilePart_FileWithBytes)
		if !ok {
			return
		}
		if encode {
			f.FileWithBytes = []byte(base64.StdEncoding.EncodeToString(f.FileWithBytes))
			return
		}
		decoded, ok := decodeBase64(string(f.FileWithBytes))
		if !ok {
			err = fmt.Errorf("a file's bytes are not base64")
			return
		}
		f.FileWithBytes = decoded
	})
	return err
}

// decodeBase64 reads base64 as agents write it: padded or not, standard or URL-safe (the JS
// SDK's Buffer and protojson read all four).
func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// walkMessages calls fn on m and every message set inside it.
func walkMessages(m protoreflect.Message, fn func(protoreflect.Message)) {
	fn(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
					walkMessages(e.Message(), fn)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := range v.List().Len() {
					walkMessages(v.List().Get(i).Message(), fn)
				}
			}
		case fd.Message() != nil:
			walkMessages(v.Message(), fn)
		}
		return true
	})
}
