package a2aversion

import (
	"encoding/json"
	"fmt"

	legacy "github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
)

// conversion turns one value's 0.3 JSON into its 1.0 value (up), and its 1.0 JSON into its 0.3
// value (down); the caller marshals the value.
type conversion struct {
	up, down func(json.RawMessage) (any, error)
}

// pair builds a conversion between a 0.3 type L and a 1.0 type V from a2av0's functions.
func pair[L, V any](up func(*L) (*V, error), down func(*V) *L) conversion {
	return conversion{
		up: func(raw json.RawMessage) (any, error) {
			var l L
			if err := unmarshal(raw, &l); err != nil {
				return nil, err
			}
			return up(&l)
		},
		down: func(raw json.RawMessage) (any, error) {
			var v V
			if err := unmarshal(raw, &v); err != nil {
				return nil, err
			}
			return down(&v), nil
		},
	}
}

// unmarshal reads a value; absent params (null or nothing) are the zero value.
func unmarshal(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("a2aversion: %w", err)
	}
	return nil
}

// infallible lifts a conversion that cannot fail.
func infallible[L, V any](f func(*L) *V) func(*L) (*V, error) {
	return func(l *L) (*V, error) { return f(l), nil }
}

var paramConversions = map[Op]conversion{
	Send:         pair(a2av0.ToV1SendMessageRequest, a2av0.FromV1SendMessageRequest),
	Stream:       pair(a2av0.ToV1SendMessageRequest, a2av0.FromV1SendMessageRequest),
	Get:          pair(infallible(a2av0.ToV1GetTaskRequest), a2av0.FromV1GetTaskRequest),
	List:         pair(infallible(a2av0.ToV1ListTasksRequest), a2av0.FromV1ListTasksRequest),
	Cancel:       pair(infallible(a2av0.ToV1CancelTaskRequest), a2av0.FromV1CancelTaskRequest),
	Subscribe:    pair(infallible(a2av0.ToV1SubscribeToTaskRequest), a2av0.FromV1SubscribeToTaskRequest),
	PushSet:      pair(infallible(a2av0.ToV1PushConfig), a2av0.FromV1PushConfig),
	PushGet:      pair(infallible(a2av0.ToV1GetTaskPushConfigRequest), a2av0.FromV1GetTaskPushConfigRequest),
	PushList:     pair(infallible(a2av0.ToV1ListTaskPushConfigRequest), a2av0.FromV1ListTaskPushConfigRequest),
	PushDelete:   pair(infallible(a2av0.ToV1DeleteTaskPushConfigRequest), a2av0.FromV1DeleteTaskPushConfigRequest),
	ExtendedCard: {up: emptyParams, down: emptyParams},
}

// emptyParams: the extended card takes no params in 0.3, and only a tenant in 1.0.
func emptyParams(json.RawMessage) (any, error) { return struct{}{}, nil }

var resultConversions = map[Op]conversion{
	Send:       eventConversion, // a Task or a Message: 0.3 tags it with kind, 1.0 wraps it
	Get:        pair(a2av0.ToV1Task, a2av0.FromV1Task),
	Cancel:     pair(a2av0.ToV1Task, a2av0.FromV1Task),
	List:       pair(a2av0.ToV1ListTasksResponse, a2av0.FromV1ListTasksResponse),
	PushSet:    pair(infallible(a2av0.ToV1PushConfig), a2av0.FromV1PushConfig),
	PushGet:    pair(infallible(a2av0.ToV1PushConfig), a2av0.FromV1PushConfig),
	PushList:   pushListConversion,
	PushDelete: {up: nullResult, down: nullResult},
	ExtendedCard: {
		up: func(raw json.RawMessage) (any, error) { return a2av0.NewAgentCardParser()(raw) },
		down: func(raw json.RawMessage) (any, error) {
			var card a2a.AgentCard
			if err := unmarshal(raw, &card); err != nil {
				return nil, err
			}
			return a2av0.FromV1AgentCard(&card), nil
		},
	},
}

func nullResult(json.RawMessage) (any, error) { return nil, nil }

// eventConversion converts a stream event, or SendMessage's result: 0.3 tells the type by its
// kind member ("task", "message", "status-update", "artifact-update"), 1.0 by the one member
// that wraps it ({"task": ...}, {"statusUpdate": ...}).
var eventConversion = conversion{
	up: func(raw json.RawMessage) (any, error) {
		e, err := legacy.UnmarshalEventJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("a2aversion: %w", err)
		}
		v1, err := a2av0.ToV1Event(e)
		if err != nil {
			return nil, err
		}
		return a2a.StreamResponse{Event: v1}, nil
	},
	down: func(raw json.RawMessage) (any, error) {
		var sr a2a.StreamResponse
		if err := unmarshal(raw, &sr); err != nil {
			return nil, err
		}
		if sr.Event == nil {
			return nil, fmt.Errorf("a2aversion: the event is empty")
		}
		return a2av0.FromV1Event(sr.Event)
	},
}

// pushListConversion: 0.3 answers a bare list of configs, 1.0 an object with configs and a
// page token.
var pushListConversion = conversion{
	up: func(raw json.RawMessage) (any, error) {
		var list []*legacy.TaskPushConfig
		if err := unmarshal(raw, &list); err != nil {
			return nil, err
		}
		resp := &a2a.ListTaskPushConfigResponse{Configs: []*a2a.PushConfig{}}
		for _, c := range list {
			resp.Configs = append(resp.Configs, a2av0.ToV1PushConfig(c))
		}
		return resp, nil
	},
	down: func(raw json.RawMessage) (any, error) {
		var resp a2a.ListTaskPushConfigResponse
		if err := unmarshal(raw, &resp); err != nil {
			return nil, err
		}
		return a2av0.FromV1PushConfigs(resp.Configs), nil
	},
}
