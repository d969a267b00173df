package concursim

// The ids of the seed batches (see [Seed]). They are contractual: the Makefile, the
// README and the end-to-end tests use them.
const (
	SeedOpenUSD   = "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13" // open, Employee, 7 reports: a CSV file
	SeedOpenEUR   = "12345678901234567890"                 // open, Employee, 12 reports; Concur's numeric id form
	SeedOpenCard  = "b7e2d4f0-9c1a-4a3e-8f6d-2e5c7a9b1d04" // open, Card Program, 41 reports: a zip file
	SeedOpenEmpty = "c0ffee00-1d2e-4f3a-9b8c-7d6e5f4a3b2c" // open, no reports: its close answers 500
	SeedClosedUSD = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d" // already closed
)

// Seed returns the default batches, in list order.
func Seed() []Batch {
	return []Batch{
		{
			ID: SeedOpenUSD, Name: "Employee Reimbursements USD - Week 47",
			Total: "1289.40", Currency: "USD", Type: TypeEmployee,
			PaymentMethod: "Expense Pay by SAP Concur", Count: 7,
		},
		{
			ID: SeedOpenEUR, Name: "ADP Payroll EUR - November",
			Total: "5230.00", Currency: "EUR", Type: TypeEmployee,
			PaymentMethod: "ADP (via EPIP file)", Count: 12,
		},
		{
			ID: SeedOpenCard, Name: "Corporate Card USD - November",
			Total: "18250.75", Currency: "USD", Type: TypeCardProgram,
			PaymentMethod: "Company Check (via Accounts Payable)", Count: 41,
		},
		{
			ID: SeedOpenEmpty, Name: "Empty Batch GBP",
			Total: "0.00", Currency: "GBP", Type: TypeEmployee,
			PaymentMethod: "Other Reimbursement Methods", Count: 0,
		},
		{
			ID: SeedClosedUSD, Name: "Employee Reimbursements USD - Week 46",
			Total: "977.15", Currency: "USD", Type: TypeEmployee,
			PaymentMethod: "Expense Pay by Concur", Count: 5, Closed: true,
		},
	}
}
