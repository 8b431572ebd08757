import { LoginForm } from "@/components/login-form";

export default function LoginPage() {
  return (
    <main className="flex h-full items-center justify-center p-4">
      <LoginForm />
    </main>
  );
}
