package contract

import "encoding/json"

// CardSummary is the part of an A2A agent card (the CardKey of a card ConfigMap) that the
// router's catalog filters on and the provider's agents data source reports.
type CardSummary struct {
	Description string      `json:"description"`
	Skills      []CardSkill `json:"skills"`
	Metadata    struct {
		Tags []string `json:"tags"`
	} `json:"metadata"`
}

// CardSkill is one skill of a card.
type CardSkill struct {
	ID   string   `json:"id"`
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// ParseCardSummary reads a card's summary.
func ParseCardSummary(card []byte) (CardSummary, error) {
	var c CardSummary
	err := json.Unmarshal(card, &c)
	return c, err
}
