"""CDS Hooks feedback: what clinicians did with our cards, stored durably and reported per card topic.

One module per job:

| module | job |
|---|---|
| `card_log` | `CardLog`: records every card the hook endpoints issue (batched by a background writer) |
| `store` | `FeedbackStore`: durable, idempotent storage of feedback items for cards the card log knows |
| `endpoint` | `POST /cds-services/{id}/feedback`: validation, ownership checks, then the store |
| `report` | `feedback_report`: acceptance / override rates per card topic (`her2-cds feedback-report`) |

`POST /cds-services/{id}/feedback` (CDS Hooks 2.0 #feedback) carries a batch of items naming a card
by its uuid, the outcome (`accepted` with `acceptedSuggestions`, or `overridden` with an optional
`overrideReason`) and when it happened. Clients retry and report the same card more than once, so
every item is stored once under a natural key (card, outcome, timestamp, suggestions, reason) with
a unique constraint and insert-or-ignore: a duplicate is accepted (200) and not stored twice.

Feedback names only the card uuid, so the topic comes from `CardLog`, which the hook endpoint calls
with the cards it issued; `feedback_report` joins the two.

Feedback belongs to whoever got the card: `CardLog` records the issuer (`iss` of the caller's JWT; a
fixed marker with auth off) and service of every card, and a batch is accepted only when every item
names a card issued to the same issuer by the same service (else 404, nothing stored, the same answer
for an unknown and for another client's card) and every accepted suggestion is one of that card's (else
400). A batch holds at most `endpoint.MAX_FEEDBACK_ITEMS` items. In reports the last outcome per card counts.
"""
