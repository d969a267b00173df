package batch

import (
	"regexp"

	"github.com/go-playground/validator/v10"
)

// idPattern is what a BatchID may look like on our API: Concur's ids are GUIDs or long
// numbers, and anything wider (slashes, dots, percent signs) has no business near a URI.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// idValidator is immutable after construction and safe for concurrent use.
var idValidator = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	if err := v.RegisterValidation("batchid", func(fl validator.FieldLevel) bool {
		return idPattern.MatchString(fl.Field().String())
	}); err != nil {
		panic(err) // only fails on a programming error in the tag name
	}
	return v
}()

// MaxIDLength is the longest BatchID the gateway accepts.
const MaxIDLength = 64

// ValidateID reports whether id is a well-formed BatchID: 1 to 64 characters of
// A-Z a-z 0-9 _ -. It returns an *Error with CodeInvalidBatchID otherwise.
func ValidateID(id string) error {
	if err := idValidator.Var(id, "required,max=64,batchid"); err != nil {
		return &Error{
			Code:   CodeInvalidBatchID,
			Detail: "a batch id is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
		}
	}
	return nil
}
