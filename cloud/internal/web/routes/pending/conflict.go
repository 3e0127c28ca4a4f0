package pending

import (
	"errors"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

func isConflict(err error) bool { return errors.Is(err, fleet.ErrConflict) }
