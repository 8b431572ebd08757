import { CronJobs } from "@/components/cron-jobs";

export default function CronPage() {
  return <CronJobs />;
}
