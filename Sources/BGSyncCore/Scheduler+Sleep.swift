// SPDX-License-Identifier: Apache-2.0

// The machine's sleep: a delay lock held only while events run, running events stopped before
// the machine sleeps (outcome `interrupted`, no attempt counted), and what is due fired at wake-up.
extension Scheduler {
    /// The machine is about to sleep: nothing new starts, and every running event is asked to
    /// stop (killed after `grace` seconds). Each ends `interrupted` and waits, pending, for the
    /// wake-up; the lock goes as soon as the last one has ended.
    public func prepareForSleep(grace: Double) {
        guard !preparingForSleep else { return }
        preparingForSleep = true
        for (key, event) in running.sorted(by: { $0.value.id < $1.value.id }) {
            // An unregistered registration's event ends `cancelled` anyway; it too must stop.
            if !event.orphaned, registrations[key] != nil { conditions.interrupting.insert(event.id) }
            dispatcher.cancel(eventID: event.id, grace: grace)
        }
        updateSleepDelay()
    }

    /// The machine woke up (or did not sleep after all): what became due meanwhile (a back-off
    /// that ended while it slept, a pending registration) fires now.
    public func resumedFromSleep() {
        guard preparingForSleep else { return }
        preparingForSleep = false
        wakeup()
    }

    /// Asks the sleep monitor for the lock while events run, and lets it go when none does.
    func updateSleepDelay() {
        let wanted = !running.isEmpty
        guard wanted != holdingSleepDelay else { return }
        holdingSleepDelay = wanted
        sleepMonitor?.holdSleepDelay(wanted)
    }
}
