"""The one order record every capability writes to and every channel reads: orders, their lines,
fulfillment orders and reservations, the timeline, and the vocabulary of fulfillment states.
Below fulfillment and sourcing, so both can write it; the flows that change it live in orders/.
"""
