// The reference for "network back": NetworkManager's own dispatcher starting a script when the
// real NetworkManager, in a network namespace of its own, comes back online.
import Foundation

func dispatcherReaction() -> Reference {
    .notMeasured("the namespace harness is not written yet")
}
