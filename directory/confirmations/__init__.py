"""Listings stay true: therapists are asked by email, on a schedule, to confirm whether they accept new clients,
and answer by a signed link (`links`); the requests and answers (`requests`); the email (`message`); what admins
see of it (`freshness`)."""
