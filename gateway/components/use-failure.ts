"use client";

import { useRouter } from "next/navigation";
import { useCallback } from "react";
import { ApiError } from "@/lib/client-api";

/** How a page reports a failed API call: a 401 means the session expired (back to the login page), else the message. */
export function useFailure(setError: (message: string) => void): (caught: unknown, fallback: string) => void {
  const router = useRouter();
  return useCallback(
    (caught: unknown, fallback: string) => {
      if (caught instanceof ApiError && caught.status === 401) router.replace("/login");
      else setError(caught instanceof Error ? caught.message : fallback);
    },
    [router, setError],
  );
}
